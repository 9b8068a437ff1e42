//! Vector input readers (filled in next).
