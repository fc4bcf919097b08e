// Package errtext holds what reyes' error messages share: how a value from
// an untrusted source (a file, the network) is shortened before an error
// quotes it.
package errtext

import "strings"

// MaxQuoted is how many bytes of an untrusted value an error quotes.
const MaxQuoted = 80

// Clip shortens a hostile value before it is quoted in an error: at most
// MaxQuoted bytes, cut at a valid UTF-8 boundary, and "..." when cut.
func Clip(s string) string {
	if len(s) <= MaxQuoted {
		return s
	}
	return strings.ToValidUTF8(s[:MaxQuoted], "") + "..."
}
