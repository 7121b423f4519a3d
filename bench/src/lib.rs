//! Meridian benchmark driver.
