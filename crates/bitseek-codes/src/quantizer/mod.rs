//! Quantizers (filled in next).
