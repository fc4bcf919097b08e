// Package applytest provides Kernel, a stateful fake of the tools package
// apply runs (iptables, iptables-restore, ipset, conntrack), for unit tests
// that need no root and no kernel. It parses restore input into chains and
// sets, enforces the rules that matter for apply's correctness (a rule may
// only refer to existing chains and sets, a set in use cannot be
// destroyed, a restore transaction is all or nothing, ipset restore stops
// at the first bad line), and can fail on demand.
//
// It is not a model of packet filtering: use render.Decide for policy and
// the kernel tests of package apply for the real thing.
package applytest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"iter"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Call is one command the fake was asked to run.
type Call struct {
	Name  string
	Args  []string
	Stdin string
}

// String renders the call as a command line.
func (c Call) String() string { return strings.TrimSpace(c.Name + " " + strings.Join(c.Args, " ")) }

// Kernel is the fake. Its zero value is not ready; use New. It is safe for
// concurrent use.
type Kernel struct {
	mu sync.Mutex
	// Backend is "nft" or "legacy": what "iptables --version" reports.
	backend string
	tables  map[int]*table // by family 4, 6
	sets    map[string]*set
	calls   []Call
	initval int

	// Fail, if set, is consulted before every command; a non-nil error is
	// returned as the command's failure and the command does nothing.
	Fail func(c Call) error
	// FailLine, if set, is consulted for every line of ipset restore and
	// iptables-restore input; returning true fails the command at that
	// line, as the real tools do (ipset restore keeps the lines before
	// it, iptables-restore keeps nothing).
	FailLine func(c Call, line string) bool
}

type table struct {
	chains map[string]*chain
}

type chain struct {
	builtin bool
	policy  string
	rules   []string
}

type set struct {
	typ, family string
	initval     string
	members     map[string]bool
}

// New returns an empty fake kernel whose default iptables is backend
// ("nft" or "legacy"); both backends' tools are "installed" but share one
// ruleset.
func New(backend string) *Kernel {
	k := &Kernel{backend: backend, tables: map[int]*table{}, sets: map[string]*set{}}
	for _, f := range []int{4, 6} {
		k.tables[f] = newTable()
	}
	return k
}

func newTable() *table {
	t := &table{chains: map[string]*chain{}}
	for _, c := range []string{"INPUT", "FORWARD", "OUTPUT"} {
		t.chains[c] = &chain{builtin: true, policy: "ACCEPT"}
	}
	return t
}

func (t *table) clone() *table {
	c := &table{chains: map[string]*chain{}}
	for n, ch := range t.chains {
		cc := *ch
		cc.rules = slices.Clone(ch.rules)
		c.chains[n] = &cc
	}
	return c
}

// Calls returns the commands run so far.
func (k *Kernel) Calls() []Call {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.calls)
}

// ResetCalls forgets the recorded commands.
func (k *Kernel) ResetCalls() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls = nil
}

// Error is a failed fake command; its message holds the fake "stderr".
type Error struct {
	Call   Call
	Stderr string
}

// Error reads like the real tools' failures: the command and its stderr.
func (e *Error) Error() string {
	return fmt.Sprintf("running %s: exit status 1: %s", e.Call, e.Stderr)
}

// Run implements apply.Runner.
func (k *Kernel) Run(_ context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	c := Call{Name: name, Args: slices.Clone(args), Stdin: string(stdin)}
	k.calls = append(k.calls, c)
	if k.Fail != nil {
		if err := k.Fail(c); err != nil {
			return nil, err
		}
	}
	fail := func(format string, a ...any) ([]byte, error) {
		return nil, &Error{Call: c, Stderr: fmt.Sprintf(format, a...)}
	}
	fam, tool, ok := parseTool(name)
	if !ok {
		switch name {
		case "ipset":
			return k.ipset(c)
		case "conntrack":
			return nil, nil
		}
		return fail("%s: command not found", name)
	}
	args = slices.DeleteFunc(slices.Clone(args), func(a string) bool { return a == "--wait" || a == "-w" })
	switch tool {
	case "restore":
		noflush := slices.Contains(args, "--noflush") || slices.Contains(args, "-n")
		return k.restore(c, fam, noflush)
	case "save":
		return []byte(k.dumpTable(fam)), nil
	}
	if len(args) == 1 && args[0] == "--version" {
		return []byte(fmt.Sprintf("%s v1.8.9 (%s)\n", name, map[string]string{"nft": "nf_tables", "legacy": "legacy"}[k.backendOf(name)])), nil
	}
	return k.iptables(c, fam, args)
}

func (k *Kernel) backendOf(name string) string {
	switch {
	case strings.Contains(name, "-nft"):
		return "nft"
	case strings.Contains(name, "-legacy"):
		return "legacy"
	}
	return k.backend
}

// parseTool recognises iptables-ish programs: family, and "", "restore"
// or "save".
func parseTool(name string) (fam int, tool string, ok bool) {
	base := name
	switch {
	case strings.HasPrefix(base, "ip6tables"):
		fam = 6
	case strings.HasPrefix(base, "iptables"):
		fam = 4
	default:
		return 0, "", false
	}
	switch {
	case strings.HasSuffix(base, "-restore"):
		return fam, "restore", true
	case strings.HasSuffix(base, "-save"):
		return fam, "save", true
	}
	return fam, "", true
}

// iptables handles "-S [chain [n]]".
func (k *Kernel) iptables(c Call, fam int, args []string) ([]byte, error) {
	fail := func(s string) ([]byte, error) { return nil, &Error{Call: c, Stderr: s} }
	if len(args) >= 2 && args[0] == "-t" {
		args = args[2:]
	}
	if len(args) == 0 || args[0] != "-S" {
		return fail("fake: unsupported iptables arguments " + strings.Join(args, " "))
	}
	t := k.tables[fam]
	if len(args) == 1 {
		return []byte(listTable(t)), nil
	}
	ch, ok := t.chains[args[1]]
	if !ok {
		return fail("iptables: No chain/target/match by that name.")
	}
	var b strings.Builder
	if len(args) == 2 {
		if ch.builtin {
			fmt.Fprintf(&b, "-P %s %s\n", args[1], ch.policy)
		} else {
			fmt.Fprintf(&b, "-N %s\n", args[1])
		}
		for _, r := range ch.rules {
			fmt.Fprintf(&b, "-A %s %s\n", args[1], r)
		}
		return []byte(b.String()), nil
	}
	n, err := strconv.Atoi(args[2])
	if err != nil || n < 1 {
		return fail("fake: bad rule number")
	}
	if n <= len(ch.rules) {
		fmt.Fprintf(&b, "-A %s %s\n", args[1], ch.rules[n-1])
	}
	return []byte(b.String()), nil
}

func sortedChains(t *table) []string {
	var names []string
	for n := range t.chains {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int {
		ba, bb := t.chains[a].builtin, t.chains[b].builtin
		if ba != bb {
			if ba {
				return -1
			}
			return 1
		}
		if ba {
			order := map[string]int{"INPUT": 0, "FORWARD": 1, "OUTPUT": 2}
			return order[a] - order[b]
		}
		return strings.Compare(a, b)
	})
	return names
}

func listTable(t *table) string {
	var b strings.Builder
	names := sortedChains(t)
	for _, n := range names {
		if ch := t.chains[n]; ch.builtin {
			fmt.Fprintf(&b, "-P %s %s\n", n, ch.policy)
		} else {
			fmt.Fprintf(&b, "-N %s\n", n)
		}
	}
	for _, n := range names {
		for _, r := range t.chains[n].rules {
			fmt.Fprintf(&b, "-A %s %s\n", n, r)
		}
	}
	return b.String()
}

func (k *Kernel) dumpTable(fam int) string {
	t := k.tables[fam]
	var b strings.Builder
	b.WriteString("*filter\n")
	names := sortedChains(t)
	for _, n := range names {
		ch := t.chains[n]
		p := "-"
		if ch.builtin {
			p = ch.policy
		}
		fmt.Fprintf(&b, ":%s %s [0:0]\n", n, p)
	}
	for _, n := range names {
		for _, r := range t.chains[n].rules {
			fmt.Fprintf(&b, "-A %s %s\n", n, r)
		}
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

var builtinTargets = map[string]bool{"ACCEPT": true, "DROP": true, "RETURN": true, "REJECT": true, "LOG": true}

// checkRule verifies that a rule's targets and sets exist.
func (k *Kernel) checkRule(t *table, spec string) error {
	f := strings.Fields(spec)
	for i := 0; i+1 < len(f); i++ {
		switch f[i] {
		case "-j", "-g":
			if !builtinTargets[f[i+1]] {
				if _, ok := t.chains[f[i+1]]; !ok {
					return toolError("Couldn't load target `%s':No such file or directory", f[i+1])
				}
			}
		case "--match-set":
			if _, ok := k.sets[f[i+1]]; !ok {
				return toolError("Set %s doesn't exist.", f[i+1])
			}
		case "--bogus":
			return fmt.Errorf("unknown option %q", f[i])
		}
	}
	return nil
}

func referenced(t *table, name string) bool {
	for _, ch := range t.chains {
		for _, r := range ch.rules {
			f := strings.Fields(r)
			for i := 0; i+1 < len(f); i++ {
				if (f[i] == "-j" || f[i] == "-g") && f[i+1] == name {
					return true
				}
			}
		}
	}
	return false
}

// restore applies iptables-restore input to a copy of the table and keeps
// it only if every line and the COMMIT succeed.
func (k *Kernel) restore(c Call, fam int, noflush bool) ([]byte, error) {
	work := k.tables[fam].clone()
	lineNo := 0
	fail := func(msg string) ([]byte, error) {
		return nil, &Error{Call: c, Stderr: fmt.Sprintf("%s v1.8.9: %s\nError occurred at line: %d", c.Name, msg, lineNo)}
	}
	inTable := false
	for n, line := range scriptLines(c.Stdin) {
		lineNo = n
		if k.FailLine != nil && k.FailLine(c, line) {
			return fail("fake failure")
		}
		switch {
		case line == "*filter":
			inTable = true
			if !noflush {
				work = newTable()
			}
			continue
		case strings.HasPrefix(line, "*"):
			return fail("fake: only the filter table is supported")
		case !inTable:
			return fail("no table")
		case line == "COMMIT":
			k.tables[fam] = work
			inTable = false
			continue
		}
		f := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, ":"):
			name := f[0][1:]
			if len(f) < 2 {
				return fail("bad chain line")
			}
			if ch, ok := work.chains[name]; ok {
				if ch.builtin {
					ch.policy = f[1]
				}
				ch.rules = nil
			} else {
				work.chains[name] = &chain{}
			}
		case f[0] == "-A" || f[0] == "-I" || f[0] == "-D":
			if len(f) < 2 {
				return fail("bad rule line")
			}
			ch, ok := work.chains[f[1]]
			if !ok {
				return fail(fmt.Sprintf("chain %s does not exist", f[1]))
			}
			rest := f[2:]
			pos := len(ch.rules)
			if f[0] == "-I" {
				pos = 0
				if len(rest) > 0 {
					if n, err := strconv.Atoi(rest[0]); err == nil {
						pos, rest = n-1, rest[1:]
					}
				}
				if pos < 0 || pos > len(ch.rules) {
					return fail("index too big")
				}
			}
			spec := strings.Join(rest, " ")
			if f[0] == "-D" {
				i := slices.Index(ch.rules, spec)
				if i < 0 {
					return fail("Bad rule (does a matching rule exist in that chain?).")
				}
				ch.rules = slices.Delete(ch.rules, i, i+1)
				continue
			}
			if err := k.checkRule(work, spec); err != nil {
				return fail(err.Error())
			}
			ch.rules = slices.Insert(ch.rules, pos, spec)
		case f[0] == "-X" && len(f) == 2:
			ch, ok := work.chains[f[1]]
			if !ok || ch.builtin {
				return fail("No chain/target/match by that name.")
			}
			if len(ch.rules) > 0 || referenced(work, f[1]) {
				return fail("Directory not empty / chain in use")
			}
			delete(work.chains, f[1])
		case f[0] == "-F" && len(f) == 2:
			ch, ok := work.chains[f[1]]
			if !ok {
				return fail("No chain/target/match by that name.")
			}
			ch.rules = nil
		default:
			return fail("fake: unsupported line")
		}
	}
	if inTable {
		return fail("COMMIT expected")
	}
	return nil, nil
}

// ipset handles list -t, list -n, save [name], restore, destroy.
func (k *Kernel) ipset(c Call) ([]byte, error) {
	a := c.Args
	switch {
	case len(a) == 2 && a[0] == "list" && a[1] == "-t":
		var b strings.Builder
		refs := k.allSetRefs()
		for _, n := range k.setNames() {
			s := k.sets[n]
			fmt.Fprintf(&b, "Name: %s\nType: %s\nRevision: 6\nHeader: family %s hashsize 1024 maxelem 65536 bucketsize 12 initval %s\nSize in memory: 200\nReferences: %d\nNumber of entries: %d\n",
				n, s.typ, s.family, s.initval, refs[n], len(s.members))
		}
		return []byte(b.String()), nil
	case len(a) == 2 && a[0] == "list" && a[1] == "-n":
		return []byte(strings.Join(k.setNames(), "\n") + "\n"), nil
	case len(a) == 1 && a[0] == "save":
		return []byte(k.saveSets()), nil
	case len(a) == 2 && a[0] == "save":
		if _, ok := k.sets[a[1]]; !ok {
			return nil, &Error{Call: c, Stderr: "ipset v7.17: The set with the given name does not exist"}
		}
		var b strings.Builder
		for _, l := range strings.SplitAfter(k.saveSets(), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[1] == a[1] {
				b.WriteString(l)
			}
		}
		return []byte(b.String()), nil
	case len(a) == 1 && a[0] == "restore":
		return k.ipsetRestore(c)
	case len(a) == 2 && a[0] == "destroy":
		if err := k.ipsetCmd(strings.Fields("destroy " + a[1])); err != nil {
			return nil, &Error{Call: c, Stderr: "ipset v7.17: " + err.Error()}
		}
		return nil, nil
	}
	return nil, &Error{Call: c, Stderr: "fake: unsupported ipset arguments"}
}

func (k *Kernel) setNames() []string {
	var names []string
	for n := range k.sets {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// allSetRefs counts the rules that refer to each set, in one pass over the
// rules (setRefs per set is quadratic for plans with thousands of sets).
func (k *Kernel) allSetRefs() map[string]int {
	refs := map[string]int{}
	for _, t := range k.tables {
		for _, ch := range t.chains {
			for _, r := range ch.rules {
				f := strings.Fields(r)
				for i := 0; i+1 < len(f); i++ {
					if f[i] == "--match-set" {
						refs[f[i+1]]++
					}
				}
			}
		}
	}
	return refs
}

func (k *Kernel) setRefs(name string) int {
	n := 0
	for _, t := range k.tables {
		for _, ch := range t.chains {
			for _, r := range ch.rules {
				if strings.Contains(" "+r+" ", " --match-set "+name+" ") {
					n++
				}
			}
		}
	}
	return n
}

func (k *Kernel) saveSets() string {
	var b strings.Builder
	for _, n := range k.setNames() {
		s := k.sets[n]
		fmt.Fprintf(&b, "create %s %s family %s hashsize 1024 maxelem 65536\n", n, s.typ, s.family)
		var ms []string
		for m := range s.members {
			ms = append(ms, m)
		}
		slices.Sort(ms)
		for _, m := range ms {
			fmt.Fprintf(&b, "add %s %s\n", n, m)
		}
	}
	return b.String()
}

func (k *Kernel) ipsetRestore(c Call) ([]byte, error) {
	for lineNo, line := range scriptLines(c.Stdin) {
		if k.FailLine != nil && k.FailLine(c, line) {
			return nil, &Error{Call: c, Stderr: fmt.Sprintf("ipset v7.17: Error in line %d: fake failure", lineNo)}
		}
		if err := k.ipsetCmd(strings.Fields(line)); err != nil {
			return nil, &Error{Call: c, Stderr: fmt.Sprintf("ipset v7.17: Error in line %d: %v", lineNo, err)}
		}
	}
	return nil, nil
}

func (k *Kernel) ipsetCmd(f []string) error {
	get := func(name string) (*set, error) {
		s, ok := k.sets[name]
		if !ok {
			return nil, toolError("The set with the given name does not exist")
		}
		return s, nil
	}
	exist := slices.Contains(f, "-exist")
	switch {
	case f[0] == "create" && len(f) >= 3:
		if _, ok := k.sets[f[1]]; ok {
			if exist {
				return nil
			}
			return toolError("Set cannot be created: set with the same name already exists")
		}
		fam := "inet"
		if i := slices.Index(f, "family"); i >= 0 && i+1 < len(f) {
			fam = f[i+1]
		}
		k.initval++
		k.sets[f[1]] = &set{typ: f[2], family: fam, initval: fmt.Sprintf("0x%08x", k.initval), members: map[string]bool{}}
	case f[0] == "flush" && len(f) == 2:
		s, err := get(f[1])
		if err != nil {
			return err
		}
		s.members = map[string]bool{}
	case f[0] == "del" && len(f) >= 3:
		s, err := get(f[1])
		if err != nil {
			return err
		}
		if !s.members[f[2]] && !exist {
			return toolError("Element cannot be deleted from the set: it's not added")
		}
		delete(s.members, f[2])
	case f[0] == "add" && len(f) >= 3:
		s, err := get(f[1])
		if err != nil {
			return err
		}
		if strings.Contains(f[2], ".") != (s.family == "inet") || strings.ContainsAny(f[2], "xyz") {
			return toolError("Syntax error: cannot parse %s", f[2])
		}
		if s.members[f[2]] && !exist {
			return toolError("Element cannot be added to the set: it's already added")
		}
		s.members[f[2]] = true
	case f[0] == "swap" && len(f) == 3:
		a, err := get(f[1])
		if err != nil {
			return err
		}
		b, err := get(f[2])
		if err != nil {
			return err
		}
		if a.typ != b.typ || a.family != b.family {
			return toolError("The sets cannot be swapped: their type does not match")
		}
		k.sets[f[1]], k.sets[f[2]] = b, a
	case f[0] == "rename" && len(f) == 3:
		s, err := get(f[1])
		if err != nil {
			return err
		}
		if _, ok := k.sets[f[2]]; ok {
			return fmt.Errorf("a set with the new name already exists")
		}
		if k.setRefs(f[1]) > 0 {
			return toolError("Set cannot be renamed: it is in use by a kernel component")
		}
		delete(k.sets, f[1])
		k.sets[f[2]] = s
	case f[0] == "destroy" && len(f) == 2:
		if _, err := get(f[1]); err != nil {
			return err
		}
		if k.setRefs(f[1]) > 0 {
			return toolError("Set cannot be destroyed: it is in use by a kernel component")
		}
		delete(k.sets, f[1])
	default:
		return fmt.Errorf("fake: unsupported command %q", strings.Join(f, " "))
	}
	return nil
}

// Dump is a text snapshot of the whole fake kernel: both families' filter
// tables as iptables-save prints them, then the sets as ipset save does.
// Tests compare dumps.
func (k *Kernel) Dump() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var b bytes.Buffer
	for _, fam := range []int{4, 6} {
		fmt.Fprintf(&b, "# ipv%d\n%s", fam, k.dumpTable(fam))
	}
	b.WriteString("# ipset\n")
	b.WriteString(k.saveSets())
	return b.String()
}

// slotRE finds a set's second slot, its name + "-b" (apply.SlotSuffix).
var slotRE = regexp.MustCompile(`(reyes[46]-[^ \n]*?)-b\b`)

// Unslotted is a Dump with every set's second slot (name + "-b") written
// under the set's own name: package apply loads changed sets under
// whichever of the two slots is free, so two kernels that went through
// different histories compare equal this way when they hold the same
// policy. The sets are sorted again by their names; rules keep their
// order.
func Unslotted(dump string) string {
	d := slotRE.ReplaceAllString(dump, "$1")
	head, sets, ok := strings.Cut(d, "# ipset\n")
	if !ok {
		return d
	}
	// Each set is its create line and its add lines.
	var blocks []string
	for _, l := range strings.SplitAfter(sets, "\n") {
		if strings.HasPrefix(l, "create ") || len(blocks) == 0 {
			blocks = append(blocks, l)
			continue
		}
		blocks[len(blocks)-1] += l
	}
	slices.Sort(blocks)
	return head + "# ipset\n" + strings.Join(blocks, "")
}

// Script runs restore-style setup text against the fake, for test
// fixtures: iptables-restore --noflush input for family fam.
func (k *Kernel) Script(fam int, text string) error {
	name := "iptables-restore"
	if fam == 6 {
		name = "ip6tables-restore"
	}
	_, err := k.Run(context.Background(), []byte(text), name, "--noflush")
	return err
}

// toolError is an error with the message the real tool (ipset, iptables)
// prints, verbatim: capitalised and punctuated as the tool writes it, so
// that the fake fails as the kernel tools do.
func toolError(format string, a ...any) error { return toolMessage(fmt.Sprintf(format, a...)) }

// toolMessage is toolError's error.
type toolMessage string

func (m toolMessage) Error() string { return string(m) }

// scriptLines yields the lines of a restore script that say something (not
// blank, not a comment), trimmed, with their line numbers from 1.
func scriptLines(text string) iter.Seq2[int, string] {
	return func(yield func(int, string) bool) {
		sc := bufio.NewScanner(strings.NewReader(text))
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			if !yield(n, line) {
				return
			}
		}
	}
}
