package hosts

// isUnreachable reports whether err says that a server cannot be reached.
// Plan 9 reports network errors as strings, which are not matched: an
// unreachable server there is a plain network error.
func isUnreachable(error) bool { return false }
