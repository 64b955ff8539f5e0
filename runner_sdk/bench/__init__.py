"""`runner-sdk bench`: measure runners on this host, each measurement in a fresh server process."""
