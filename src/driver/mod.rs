//! Host driver.
