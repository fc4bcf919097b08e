// Command reyesctl makes signing keys for reyes, checks and inspects signed
// rulesets, splits them for stock GnuPG, and explains what a host's reyes
// policy does with a packet.
//
//	reyesctl keygen  --secret FILE --public FILE [--name N] [--email E] [--force]
//	reyesctl verify  --trusted-key FILE [--trusted-key FILE]... [--scope NAME] [--max-size N] OBJECT
//	reyesctl unpack  OBJECT DIR        (then: gpg --verify DIR/payload.json.asc DIR/payload.json)
//	reyesctl inspect [--trusted-key FILE]... OBJECT
//	reyesctl explain --store URL|PATH --trusted-key FILE... --src IP --dst IP --proto tcp|udp|icmp|icmpv6|N
//	                 [--port N] [--icmp-type N --icmp-code N] [--ipsec] [--vpc ID]
//	                 [reyes-follower's plan flags: --addrs, --groups, --mode, --table, --fail-safe,
//	                 --log-accept, --log-drop, --foreign-cidr, --vpc-cidr, --baseline...]
//	reyesctl status  [--state-dir DIR] [--json] [--no-kernel] [--netns NAME]
//	reyesctl --version
//
// OBJECT and --store are a file path or s3://bucket/key. "reyesctl help" and
// "reyesctl <command> -h" list every flag. Errors are one line on stderr;
// the exit status is 0 on success, 1 when refused or failed, 2 on a usage
// error (the same scheme as reyes-leader and reyes-follower). The work is done by package internal/ctl.
package main

import (
	"context"
	"io"
	"os"

	"github.com/reyes-fw/reyes/internal/cli"
	"github.com/reyes-fw/reyes/internal/ctl"
)

func main() {
	os.Exit(cli.Main("reyesctl", func(ctx context.Context, args, _ []string, stdout, stderr io.Writer) error {
		return ctl.Run(ctx, args, stdout, stderr)
	}))
}
