//! Index file format (filled in next).
