package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/reyes-fw/reyes/inventory"
	"github.com/reyes-fw/reyes/reyes"
)

// staticSource is an inventory source that returns one inventory: the
// leader's EC2 fetch is not what this benchmark measures.
type staticSource struct{ inv *inventory.Inventory }

// Fetch implements sgsource.Source.
func (s *staticSource) Fetch(context.Context) (*inventory.Inventory, error) { return s.inv, nil }

// countingStore is a reyes.PartStore around a file store that counts the
// requests made through it and the bytes they moved, as an S3 bill would:
// a GET of the root (answered 304 or not), each GET or PUT of a part, each
// LIST and DELETE.
type countingStore struct {
	*reyes.FileStore
	c *requests
}

func newCountingStore(fs *reyes.FileStore) *countingStore {
	return &countingStore{FileStore: fs, c: &requests{}}
}

// Get implements reyes.Store.
func (s *countingStore) Get(ctx context.Context, ifNoneMatch string) ([]byte, string, error) {
	b, tag, err := s.FileStore.Get(ctx, ifNoneMatch)
	op := "root GET"
	if ifNoneMatch != "" {
		op = "root GET (conditional)"
	}
	if errors.Is(err, reyes.ErrNotModified) {
		op = "root GET (304)"
	}
	s.c.add(op, int64(len(b)), 0)
	return b, tag, err
}

// Put implements reyes.Store.
func (s *countingStore) Put(ctx context.Context, body []byte) error {
	s.c.add("root PUT", 0, int64(len(body)))
	return s.FileStore.Put(ctx, body)
}

// Parts implements reyes.PartStore.
func (s *countingStore) Parts() reyes.Objects {
	return &countingObjects{s.FileStore.Parts(), "parts", s.c}
}

// Roots implements reyes.PartStore.
func (s *countingStore) Roots() reyes.Objects {
	return &countingObjects{s.FileStore.Roots(), "roots", s.c}
}

// countingObjects counts the requests to one directory of a store.
type countingObjects struct {
	reyes.Objects
	dir string
	c   *requests
}

func (o *countingObjects) Get(ctx context.Context, name string, maxSize int64) ([]byte, error) {
	b, err := o.Objects.Get(ctx, name, maxSize)
	o.c.add(o.dir+" GET", int64(len(b)), 0)
	return b, err
}

func (o *countingObjects) Put(ctx context.Context, name string, body []byte) error {
	o.c.add(o.dir+" PUT", 0, int64(len(body)))
	return o.Objects.Put(ctx, name, body)
}

func (o *countingObjects) List(ctx context.Context) ([]reyes.ObjectInfo, error) {
	o.c.add(o.dir+" LIST", 0, 0)
	return o.Objects.List(ctx)
}

func (o *countingObjects) Delete(ctx context.Context, name string) error {
	o.c.add(o.dir+" DELETE", 0, 0)
	return o.Objects.Delete(ctx, name)
}

// requests counts requests by kind ("root GET", "parts PUT", ...).
type requests struct {
	mu  sync.Mutex
	n   map[string]int
	in  int64 // bytes read
	out int64 // bytes written
}

func (r *requests) add(op string, in, out int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == nil {
		r.n = map[string]int{}
	}
	r.n[op]++
	r.in += in
	r.out += out
}

// take returns what was counted since the last take and resets it.
func (r *requests) take() reqCount {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := reqCount{N: r.n, In: r.in, Out: r.out}
	r.n, r.in, r.out = nil, 0, 0
	return c
}

// reqCount is what a requests counted.
type reqCount struct {
	N       map[string]int
	In, Out int64
}

// Total is the number of requests.
func (c reqCount) Total() int {
	t := 0
	for _, n := range c.N {
		t += n
	}
	return t
}

// String lists the requests by kind: "1 root GET, 3 parts PUT".
func (c reqCount) String() string {
	var ops []string
	for op := range c.N {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	var s []string
	for _, op := range ops {
		s = append(s, fmt.Sprintf("%d %s", c.N[op], op))
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
