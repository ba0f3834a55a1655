//! Host drivers.
