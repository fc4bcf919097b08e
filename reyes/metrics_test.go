package reyes_test

import (
	"os"
	"sort"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// promFile is a metrics file as Prometheus' own parser reads it.
type promFile struct {
	text     string
	families map[string]*dto.MetricFamily
}

func readMetrics(t *testing.T, path string) promFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading metrics: %v", err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(b)))
	if err != nil {
		t.Fatalf("parsing metrics: %v\n%s", err, b)
	}
	return promFile{text: string(b), families: fams}
}

// sample returns the value of the sample of name whose labels are
// labels ("k=v" each); ok is false when there is none.
func (f promFile) sample(name string, labels ...string) (float64, bool) {
	fam, ok := f.families[name]
	if !ok {
		return 0, false
	}
	want := append([]string(nil), labels...)
	sort.Strings(want)
	for _, m := range fam.GetMetric() {
		var have []string
		for _, l := range m.GetLabel() {
			have = append(have, l.GetName()+"="+l.GetValue())
		}
		sort.Strings(have)
		if strings.Join(have, ",") != strings.Join(want, ",") {
			continue
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

func (f promFile) value(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	v, ok := f.sample(name, labels...)
	if !ok {
		t.Fatalf("no sample %s%v in:\n%s", name, labels, f.text)
	}
	return v
}
