//! Reports (to come).
