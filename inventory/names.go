package inventory

// Lengths of AWS resource IDs after the prefix: the short form has 8 hex
// digits, the long form 17.
const (
	minIDHex = 8
	maxIDHex = 17
)

// Prefixes of the resource IDs that an inventory holds.
const (
	PrefixGroup      = "sg-"
	PrefixInterface  = "eni-"
	PrefixVPC        = "vpc-"
	PrefixPrefixList = "pl-"
	PrefixInstance   = "i-"
)

// ValidID reports whether id is prefix followed by 8 to 17 lowercase hex
// digits, the form of every EC2 resource ID.
func ValidID(id, prefix string) bool {
	if len(id) < len(prefix)+minIDHex || len(id) > len(prefix)+maxIDHex || id[:len(prefix)] != prefix {
		return false
	}
	for i := len(prefix); i < len(id); i++ {
		if c := id[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// ValidGroupID reports whether s is a security group ID (sg-…).
func ValidGroupID(s string) bool { return ValidID(s, PrefixGroup) }

// ValidInterfaceID reports whether s is a network interface ID (eni-…).
func ValidInterfaceID(s string) bool { return ValidID(s, PrefixInterface) }

// ValidVPCID reports whether s is a VPC ID (vpc-…).
func ValidVPCID(s string) bool { return ValidID(s, PrefixVPC) }

// ValidPrefixListID reports whether s is a managed prefix list ID (pl-…).
func ValidPrefixListID(s string) bool { return ValidID(s, PrefixPrefixList) }

// ValidInstanceID reports whether s is an instance ID (i-…).
func ValidInstanceID(s string) bool { return ValidID(s, PrefixInstance) }

// ValidAccountID reports whether s is a 12-digit AWS account ID.
func ValidAccountID(s string) bool { return len(s) == 12 && allDigits(s) }

// ValidMAC reports whether s is a MAC address as EC2 prints it (the
// MacAddress of an interface, a key of the metadata service's
// network/interfaces/macs/): six pairs of lowercase hex digits separated
// by colons.
func ValidMAC(s string) bool {
	if len(s) != 17 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if i%3 == 2 {
			if c != ':' {
				return false
			}
		} else if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// MaxRegionLen bounds the length of a region code.
const MaxRegionLen = 32

// ValidRegion reports whether s is shaped like an AWS region code: a
// partition prefix of two to four lowercase letters, one to three lowercase
// words, and a number of one or two digits, separated by dashes, at most
// MaxRegionLen bytes: "us-east-1", "ap-southeast-2", "us-gov-west-1",
// "us-isob-east-1", "eusc-de-east-1". It covers the region patterns of every
// AWS partition; a name it refuses is a wrong path or a typo, not a region.
func ValidRegion(s string) bool {
	if len(s) > MaxRegionLen {
		return false
	}
	words := 0 // dash-separated parts before the current one
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != '-' {
			continue
		}
		part := s[start:i]
		start = i + 1
		switch {
		case i == len(s): // the number
			return words >= 2 && words <= 4 && len(part) >= 1 && len(part) <= 2 && allDigits(part)
		case words == 0: // the partition prefix
			if len(part) < 2 || len(part) > 4 || !allLower(part) {
				return false
			}
		default:
			if part == "" || !allLower(part) {
				return false
			}
		}
		words++
	}
	return false
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func allLower(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 'a' || s[i] > 'z' {
			return false
		}
	}
	return true
}
