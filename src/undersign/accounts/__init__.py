"""People and their GitHub identity: the numeric id first, the login second."""
