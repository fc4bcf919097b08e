package apply

import (
	"bufio"
	"bytes"
	"context"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/reyes-fw/reyes/render"
)

// setInfo is what "ipset list -t" says about one set.
type setInfo struct {
	Type    string // hash:ip
	Family  string // inet, inet6
	InitVal string // changes when a swap moves another set under the name
	Entries int
	// Refs is the kernel's count of references: rules that match the set.
	// A set with none affects no packet.
	Refs int
}

// listSets reads the headers of every ipset in the kernel: one cheap call
// that does not list members.
func listSets(ctx context.Context, r Runner) (map[string]setInfo, error) {
	out, err := r.Run(ctx, nil, "ipset", "list", "-t")
	if err != nil {
		return nil, err
	}
	return parseSetHeaders(out), nil
}

func parseSetHeaders(out []byte) map[string]setInfo {
	sets := map[string]setInfo{}
	var name string
	var cur setInfo
	flush := func() {
		if name != "" {
			sets[name] = cur
		}
		name, cur = "", setInfo{}
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		switch key {
		case "Name":
			flush()
			name = val
		case "Type":
			cur.Type = val
		case "Header":
			f := strings.Fields(val)
			for i := 0; i+1 < len(f); i++ {
				switch f[i] {
				case "family":
					cur.Family = f[i+1]
				case "initval":
					cur.InitVal = f[i+1]
				}
			}
		case "References":
			cur.Refs, _ = strconv.Atoi(val)
		case "Number of entries":
			cur.Entries, _ = strconv.Atoi(val)
		}
	}
	flush()
	return sets
}

// setSave is one "ipset save" of every set, shared by the families of one
// Apply: it lists both families' sets, so a run that must read members
// back in both (no record) reads them once. It is taken on first use,
// before that family changes anything; the families' sets are disjoint
// (reyes4-, reyes6-), so one family's change does not make the other's
// members in it stale.
type setSave struct {
	once sync.Once
	out  []byte
	err  error
}

// members reads the members of every set whose name starts with prefix,
// running "ipset save" on the first call.
func (s *setSave) members(ctx context.Context, r Runner, prefix string) (map[string][]netip.Addr, error) {
	s.once.Do(func() { s.out, s.err = r.Run(ctx, nil, "ipset", "save") })
	if s.err != nil {
		return nil, s.err
	}
	return parseSave(s.out, prefix)
}

// parseSave reads the members of every set whose name starts with prefix
// ("" for all) from ipset save output: the one parser of that format.
func parseSave(out []byte, prefix string) (map[string][]netip.Addr, error) {
	m := map[string][]netip.Addr{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || !strings.HasPrefix(f[1], prefix) {
			continue
		}
		switch f[0] {
		case "create":
			if _, ok := m[f[1]]; !ok {
				m[f[1]] = nil
			}
		case "add":
			a, err := netip.ParseAddr(f[2])
			if err != nil {
				// A hash:net entry: a host as a full-length prefix is a
				// member; shorter prefixes are parseSaveNets'.
				p, perr := netip.ParsePrefix(f[2])
				if perr != nil || !p.IsSingleIP() {
					continue
				}
				a = p.Addr()
			}
			m[f[1]] = append(m[f[1]], a)
		}
	}
	return m, sc.Err()
}

// parseSaveNets reads the prefixes (hash:net entries shorter than a host)
// of every set whose name starts with prefix from ipset save output; the
// host entries are parseSave's.
func parseSaveNets(out []byte, prefix string) map[string][]netip.Prefix {
	m := map[string][]netip.Prefix{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || f[0] != "add" || !strings.HasPrefix(f[1], prefix) {
			continue
		}
		if p, err := netip.ParsePrefix(f[2]); err == nil && !p.IsSingleIP() {
			m[f[1]] = append(m[f[1]], p.Masked())
		}
	}
	return m
}

// listRules runs "iptables -S chain [n]" and returns the rule lines.
func listRules(ctx context.Context, r Runner, ipt, chain string, n int) ([]string, error) {
	args := []string{"--wait", "-t", "filter", "-S"}
	if chain != "" {
		args = append(args, chain)
		if n > 0 {
			args = append(args, strconv.Itoa(n))
		}
	}
	out, err := r.Run(ctx, nil, ipt, args...)
	if err != nil {
		return nil, err
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	return lines, nil
}

// savedTable is what one "iptables-save -t filter" says that apply needs:
// the chains, the rules of some chains, whether REYES-INPUT exists and
// its first rule. A save prints each rule as "iptables -S" does ("-A
// CHAIN ..."); chains are ":CHAIN POLICY [counters]" lines.
type savedTable struct {
	chains    []string            // every chain, in the order printed
	rules     map[string][]string // "-A" lines of the chains asked for
	haveInput bool                // REYES-INPUT exists
	firstIn   string              // REYES-INPUT's first rule, "" if none
}

// parseSavedTable reads iptables-save output of the filter table, keeping
// the rules of the chains named in keep.
func parseSavedTable(out []byte, keep []string) savedTable {
	t := savedTable{rules: map[string][]string{}}
	inFilter := false
	for line := range bytes.Lines(out) {
		l := string(bytes.TrimSpace(line))
		switch {
		case strings.HasPrefix(l, "*"):
			inFilter = l == "*filter"
		case !inFilter:
		case strings.HasPrefix(l, ":"):
			if f := strings.Fields(l[1:]); len(f) > 0 {
				t.chains = append(t.chains, f[0])
				if f[0] == render.InputChain {
					t.haveInput = true
				}
			}
		case strings.HasPrefix(l, "-A "):
			chain, _, _ := strings.Cut(l[len("-A "):], " ")
			if chain == render.InputChain && t.firstIn == "" {
				t.firstIn = l
			}
			if slices.Contains(keep, chain) {
				t.rules[chain] = append(t.rules[chain], l)
			}
		}
	}
	return t
}

// parallel runs fns concurrently and returns their errors, in order.
// Only reads run this way: they change nothing, so their order does not
// matter to the invariant.
func parallel(fns ...func() error) []error {
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Go(func() { errs[i] = fn() })
	}
	wg.Wait()
	return errs
}

var planHashRE = regexp.MustCompile(`reyes plan=([0-9A-Za-z]+)`)

// kernelPlanHash extracts the plan hash from the first rule of REYES-INPUT.
func kernelPlanHash(lines []string) string {
	for _, l := range lines {
		if m := planHashRE.FindStringSubmatch(l); m != nil {
			return m[1]
		}
	}
	return ""
}

// errLineRE finds the failing line in messages of iptables-restore
// ("Error occurred at line: 5", "line 5 failed") and ipset restore
// ("Error in line 3:").
var errLineRE = regexp.MustCompile(`(?:Error occurred at line: |line |Error in line )(\d+)`)

// failedLine returns the 1-based line number a restore error names, or 0.
func failedLine(msg string) int {
	m := errLineRE.FindStringSubmatch(msg)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// lineOf returns line n (1-based) of text, or "".
func lineOf(text []byte, n int) string {
	if n <= 0 {
		return ""
	}
	for i := 1; len(text) > 0; i++ {
		line, rest, _ := bytes.Cut(text, []byte("\n"))
		if i == n {
			return string(line)
		}
		text = rest
	}
	return ""
}
