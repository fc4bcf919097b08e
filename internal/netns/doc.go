// Package netns is test support for kernel tests: it creates throw-away
// network namespaces, connects them with veth pairs, runs commands inside
// them and sends real TCP, UDP and ICMP (v4 and v6) between them.
//
// Every namespace gets a unique name ("reyes-<prefix>-<random>") so that
// tests of different packages can run in parallel, and is deleted with
// t.Cleanup, also when the test fails. New skips the test when it does not
// run as root or when the ip tool is absent.
//
// What it does not do: it never touches the caller's own namespace (no
// firewall, no routes, no addresses there), never sends traffic outside the
// namespaces it created, and is not meant for production code.
//
// Addresses: Connect numbers each link from a per-process counter and uses
// 10.99.<n>.1/.2 (/24) and fd00:99:<n>::1/::2 (/64), which exist only inside
// the namespaces.
package netns
