package sgsource

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/reyes-fw/reyes/internal/errtext"
	"github.com/reyes-fw/reyes/inventory"
)

// ErrInvalid is wrapped by every FieldError about a value reyes cannot use:
// a bad CIDR, address, ID, protocol or port, a wrong JSON type, a missing
// field. Callers can test for it with errors.Is.
var ErrInvalid = errors.New("invalid inventory")

// FieldError reports one unusable value in a document that describes the
// estate, naming where it is. Its Error text reads
//
//	eu-west-1/security-groups.json: SecurityGroups[3].IpPermissions[0].IpRanges[1].CidrIp: "10.0.0.1/8" has host bits set (the block is 10.0.0.0/8) (JSON pointer /SecurityGroups/3/IpPermissions/0/IpRanges/1/CidrIp)
type FieldError struct {
	// File is the document: a path relative to the inventory directory for
	// ReadDir, or empty for a live source (whose errors say the region and
	// the call).
	File string
	// Pointer is the JSON pointer (RFC 6901) of the value in File:
	// "/SecurityGroups/3/GroupId". Empty for the document as a whole and
	// for a live source.
	Pointer string
	// Field is the path of the value in the AWS field names:
	// "SecurityGroups[3].GroupId" in a file; a live source names an element
	// by its ID once that is known to be valid:
	// "SecurityGroups[sg-0123456789abcdef0].GroupName". Empty for the
	// document as a whole.
	Field string
	// Err says what is wrong with the value.
	Err error
}

// Error implements error.
func (e *FieldError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Field != "" {
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString(e.Field)
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	if e.Pointer != "" && e.File != "" {
		b.WriteString(" (JSON pointer " + quotedIfOdd(e.Pointer) + ")")
	}
	return b.String()
}

// quotedIfOdd returns s, or s clipped and quoted if it holds anything but
// printable ASCII (a hostile key in a pointer must not forge log lines).
func quotedIfOdd(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return strconv.Quote(errtext.Clip(s))
		}
	}
	if len(s) > 200 {
		return strconv.Quote(errtext.Clip(s))
	}
	return s
}

// Unwrap returns the cause; errors.Is(err, ErrInvalid) holds for every
// FieldError.
func (e *FieldError) Unwrap() []error { return []error{e.Err, ErrInvalid} }

// fieldError builds a FieldError about a whole file or directory.
func fieldError(file, field string, err error) *FieldError {
	return &FieldError{File: file, Field: field, Err: err}
}

// checkID reports whether id is prefix followed by 8 to 17 lowercase hex
// digits, as every EC2 resource ID is.
func checkID(id, prefix string) error {
	if !inventory.ValidID(id, prefix) {
		return fmt.Errorf("%q is not a valid ID (want %s followed by 8 to 17 lowercase hex digits)", errtext.Clip(id), prefix)
	}
	return nil
}

func checkGroupID(id string) error      { return checkID(id, inventory.PrefixGroup) }
func checkENIID(id string) error        { return checkID(id, inventory.PrefixInterface) }
func checkVPCID(id string) error        { return checkID(id, inventory.PrefixVPC) }
func checkPrefixListID(id string) error { return checkID(id, inventory.PrefixPrefixList) }
func checkInstanceID(id string) error   { return checkID(id, inventory.PrefixInstance) }

// checkAccountID accepts a 12-digit AWS account ID.
func checkAccountID(id string) error {
	if !inventory.ValidAccountID(id) {
		return fmt.Errorf("%q is not a valid account ID (want 12 digits)", errtext.Clip(id))
	}
	return nil
}

// checkUserID accepts the UserId of a UserIdGroupPair: an account ID, or the
// name of an AWS service account such as "amazon-elb".
func checkUserID(id string) error {
	if inventory.ValidAccountID(id) {
		return nil
	}
	if len(id) > len("amazon-") && len(id) <= 64 && id[:len("amazon-")] == "amazon-" {
		ok := true
		for i := len("amazon-"); i < len(id); i++ {
			c := id[i]
			if (c < 'a' || c > 'z') && c != '-' {
				ok = false
			}
		}
		if ok {
			return nil
		}
	}
	return fmt.Errorf("%q is not a valid user ID (want 12 digits or amazon-<service>)", errtext.Clip(id))
}

// checkMAC accepts a MAC address as EC2 prints it: six lowercase hex pairs
// separated by colons.
func checkMAC(s string) error {
	if !inventory.ValidMAC(s) {
		return fmt.Errorf("%q is not a valid MAC address", errtext.Clip(s))
	}
	return nil
}

// checkRegion accepts names shaped like AWS region codes (see
// inventory.ValidRegion).
func checkRegion(name string) error {
	if !inventory.ValidRegion(name) {
		return fmt.Errorf("%q does not look like an AWS region (such as us-east-1)", errtext.Clip(name))
	}
	return nil
}

// checkProtocol accepts AWS' IpProtocol values: "tcp", "udp", "icmp",
// "icmpv6", "-1" (all) or a protocol number 0..255 in decimal.
func checkProtocol(p string) error {
	switch p {
	case "tcp", "udp", "icmp", "icmpv6", "-1":
		return nil
	}
	if len(p) >= 1 && len(p) <= 3 && allDigits(p) && (len(p) == 1 || p[0] != '0') {
		if n, err := strconv.Atoi(p); err == nil && n <= 255 {
			return nil
		}
	}
	return fmt.Errorf("%q is not a protocol (want tcp, udp, icmp, icmpv6, -1 or 0..255)", errtext.Clip(p))
}

// checkPort accepts a FromPort or ToPort: -1 (all) to 65535. ICMP types and
// codes use the same fields and fall in that range too.
func checkPort(n int64) error {
	if n < -1 || n > 65535 {
		return fmt.Errorf("%d is not a port (want -1..65535)", n)
	}
	return nil
}

// family selects IPv4 or IPv6 in the parse helpers.
type family int

const (
	anyFamily family = iota
	ipv4
	ipv6
)

func (f family) String() string {
	switch f {
	case ipv4:
		return "IPv4"
	case ipv6:
		return "IPv6"
	}
	return "IP"
}

// parsePrefix parses a CIDR block of the given family (anyFamily for
// both). It rejects host bits (1.2.3.4/24), zones, IPv4-mapped IPv6 blocks
// and the wrong family.
func parsePrefix(s string, f family) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR block", errtext.Clip(s))
	}
	a := p.Addr()
	if a.Is4In6() {
		return netip.Prefix{}, fmt.Errorf("%q is an IPv4-mapped IPv6 block", errtext.Clip(s))
	}
	if f == ipv4 && !a.Is4() || f == ipv6 && !a.Is6() {
		return netip.Prefix{}, fmt.Errorf("%q is not an %s CIDR block", errtext.Clip(s), f)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("%q has host bits set (the block is %s)", errtext.Clip(s), p.Masked())
	}
	return p, nil
}

// parseAddr parses an address of the given family. It rejects zones,
// IPv4-mapped IPv6 addresses and the wrong family.
func parseAddr(s string, f family) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", errtext.Clip(s))
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%q has a zone", errtext.Clip(s))
	}
	if a.Is4In6() {
		return netip.Addr{}, fmt.Errorf("%q is an IPv4-mapped IPv6 address", errtext.Clip(s))
	}
	if f == ipv4 && !a.Is4() || f == ipv6 && !a.Is6() {
		return netip.Addr{}, fmt.Errorf("%q is not an %s address", errtext.Clip(s), f)
	}
	return a, nil
}

// allDigits reports whether s holds only the digits 0-9 (or nothing).
func allDigits(s string) bool { return strings.TrimLeft(s, "0123456789") == "" }

// checkPeeringStatus accepts the status words of a VPC peering connection
// as AWS writes them (lower case, hyphens).
func checkPeeringStatus(s string) error {
	if s == "" || len(s) > 32 {
		return fmt.Errorf("%q is not a peering status", s)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c == '-') {
			return fmt.Errorf("%q is not a peering status", s)
		}
	}
	return nil
}
