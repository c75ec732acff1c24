"""Everything that reads the log behind a cursor: handler runners, the correlator, the live feed."""
