//go:build !linux

package reyes

// netnsCookie is Linux's network namespace cookie: none elsewhere.
func netnsCookie() string { return "" }
