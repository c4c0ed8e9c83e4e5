"""`meterhouse demo`: a month of realistic platform data, stored through the real paths."""
