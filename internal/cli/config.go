package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/reyes-fw/reyes/reyes"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/v2"
)

// ErrHelp is returned by the Run functions when -h or --help was asked for
// and the help was printed.
var ErrHelp = flag.ErrHelp

// maxConfigFile bounds the configuration file.
const maxConfigFile = 1 << 20

// optKind is the type of a configuration key.
type optKind int

const (
	kString optKind = iota
	kBool
	kDuration
	kList // repeated flag, YAML list, comma-separated in the environment
	kInt
)

// option is one configuration key: its YAML key (snake_case), its flag
// (--kebab-case), its environment variable (REYES_UPPER_SNAKE) and its help.
type option struct {
	key  string
	kind optKind
	def  any
	help string
}

func (o option) flag() string { return strings.ReplaceAll(o.key, "_", "-") }

// commonOptions are keys both binaries take.
var commonOptions = []option{
	{"config", kString, "", "YAML configuration file (keys are the flag names with _ for -; the environment REYES_<KEY> overrides it, flags override both)"},
	{"store", kString, "", "where the signed ruleset lives: s3://bucket/key or a local file path"},
	{"scope", kString, "default", "name of the estate the ruleset is for; followers refuse other scopes"},
	{"s3_path_style", kBool, false, "address S3 as http://endpoint/bucket/key (for S3-compatible servers)"},
	{"s3_endpoint", kString, "", "S3 endpoint URL (default: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, then AWS)"},
	{"s3_region", kString, "", "S3 region (default: the SDK's chain, then us-east-1)"},
	{"max_size", kInt, int64(reyes.DefaultMaxObjectSize), "largest signed object accepted, in bytes"},
	{"interval", kDuration, time.Duration(0), "run every interval (with jitter) until stopped; 0 runs once"},
	{"log_format", kString, "text", "log format: text or json"},
	{"log_level", kString, "info", "log level: debug, info, warn or error"},
	{"max_validity", kDuration, reyes.DefaultMaxValidity, "longest not_after - generated_at: followers refuse longer rulesets, the leader refuses a longer ttl (raise both together)"},
}

// loadConfig parses args into a koanf instance: defaults < YAML file (from
// --config or REYES_CONFIG) < environment < flags that were given. Unknown
// keys in the file or REYES_* variables are errors naming them.
func loadConfig(name string, opts []option, args []string, environ []string, stderr io.Writer, usage string) (*koanf.Koanf, []string, error) {
	all := append(append([]option{}, commonOptions...), opts...)
	byKey := make(map[string]option, len(all))
	for _, o := range all {
		byKey[o.key] = o
	}

	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	set := map[string]any{}
	defineFlags(fs, all, set, false)
	printUsage := func(w io.Writer) {
		fmt.Fprintf(w, "Usage: %s\n\nFlags (also as YAML keys with _ for -, and as REYES_<KEY> environment variables):\n", usage)
		keys := make([]string, 0, len(all))
		for _, o := range all {
			keys = append(keys, o.key)
		}
		sort.Strings(keys)
		for _, k := range keys {
			o := byKey[k]
			def := ""
			switch v := o.def.(type) {
			case string:
				if v != "" {
					def = " (default " + v + ")"
				}
			case time.Duration:
				if v != 0 {
					def = " (default " + v.String() + ")"
				}
			case int64:
				def = " (default " + strconv.FormatInt(v, 10) + ")"
			case []string:
				if len(v) > 0 {
					def = " (default " + strings.Join(v, ",") + ")"
				}
			}
			fmt.Fprintf(w, "  --%s\n    \t%s%s\n", o.flag(), o.help, def)
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stderr)
			return nil, nil, ErrHelp
		}
		return nil, nil, fmt.Errorf("%w: %w", reyes.ErrUsage, err)
	}

	k := koanf.New(".")
	defs := map[string]any{}
	for _, o := range all {
		defs[o.key] = o.def
	}
	if err := k.Load(confmap.Provider(defs, "."), nil); err != nil {
		return nil, nil, fmt.Errorf("%w: defaults: %w", reyes.ErrConfig, err)
	}

	envMap := map[string]string{}
	for _, kv := range environ {
		if i := strings.IndexByte(kv, '='); i > 0 && strings.HasPrefix(kv[:i], "REYES_") {
			envMap[kv[:i]] = kv[i+1:]
		}
	}
	path, _ := set["config"].(string)
	if path == "" {
		path = envMap["REYES_CONFIG"]
	}
	if path != "" {
		b, err := readConfigFile(path)
		if err != nil {
			return nil, nil, err
		}
		m, err := yaml.Parser().Unmarshal(b)
		if err != nil {
			// yaml's errors may span lines; the binaries print one.
			return nil, nil, fmt.Errorf("%w: config: %s: %s", reyes.ErrConfig, path, strings.Join(strings.Fields(err.Error()), " "))
		}
		for key, v := range m {
			o, ok := byKey[key]
			if !ok || key == "config" {
				return nil, nil, fmt.Errorf("%w: %s: unknown key %q", reyes.ErrConfig, path, key)
			}
			if _, nested := v.(map[string]any); nested {
				return nil, nil, fmt.Errorf("%w: %s: key %q: want a %s, not a mapping", reyes.ErrConfig, path, key, o.kind)
			}
		}
		if err := k.Load(confmap.Provider(m, "\x00"), nil); err != nil {
			return nil, nil, fmt.Errorf("%w: %s: %w", reyes.ErrConfig, path, err)
		}
	}

	envVals := map[string]any{}
	for name, v := range envMap {
		key := strings.ToLower(strings.TrimPrefix(name, "REYES_"))
		o, ok := byKey[key]
		if !ok {
			return nil, nil, fmt.Errorf("%w: unknown environment variable %s", reyes.ErrConfig, name)
		}
		if o.kind == kList {
			envVals[key] = splitList(v)
		} else {
			envVals[key] = v
		}
	}
	if err := k.Load(confmap.Provider(envVals, "\x00"), nil); err != nil {
		return nil, nil, fmt.Errorf("%w: environment: %w", reyes.ErrConfig, err)
	}
	if err := k.Load(confmap.Provider(set, "\x00"), nil); err != nil {
		return nil, nil, fmt.Errorf("%w: flags: %w", reyes.ErrConfig, err)
	}
	return k, fs.Args(), nil
}

// defineFlags defines a flag on fs for each option; a flag given records
// its value in set under the option's key. With withDefaults the help
// text ends with the default, for flag sets whose help is printed by the
// flag package's conventions (reyesctl).
func defineFlags(fs *flag.FlagSet, opts []option, set map[string]any, withDefaults bool) {
	for _, o := range opts {
		help := o.help
		if o.kind == kList {
			help += " (repeatable)"
		}
		if d := o.defaultText(); withDefaults && d != "" {
			help += " (default " + d + ")"
		}
		switch o.kind {
		case kBool:
			fs.Func(o.flag(), help, func(string) error { set[o.key] = true; return nil })
			// A bare --flag sets true; --flag=false is accepted too.
			fs.Lookup(o.flag()).Value = boolFlag{key: o.key, set: set}
		case kList:
			fs.Func(o.flag(), help, func(v string) error {
				l, _ := set[o.key].([]string)
				set[o.key] = append(l, splitList(v)...)
				return nil
			})
		default:
			fs.Func(o.flag(), help, func(v string) error { set[o.key] = v; return nil })
		}
	}
}

// defaultText is the option's default as help prints it ("" for none).
func (o option) defaultText() string {
	switch v := o.def.(type) {
	case string:
		return v
	case time.Duration:
		if v != 0 {
			return v.String()
		}
	case int64:
		return strconv.FormatInt(v, 10)
	case []string:
		return strings.Join(v, ",")
	}
	return ""
}

func (k optKind) String() string {
	switch k {
	case kBool:
		return "boolean"
	case kDuration:
		return "duration"
	case kList:
		return "list"
	case kInt:
		return "number"
	}
	return "string"
}

func readConfigFile(path string) ([]byte, error) {
	// O_NONBLOCK: a FIFO without a writer reads as empty instead of
	// blocking in open(2) for ever, where no signal ends it.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: config: %w", reyes.ErrConfig, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxConfigFile+1))
	if err != nil {
		return nil, fmt.Errorf("%w: config: reading %s: %w", reyes.ErrConfig, path, err)
	}
	if len(b) > maxConfigFile {
		return nil, fmt.Errorf("%w: config: %s is larger than %d bytes", reyes.ErrConfig, path, maxConfigFile)
	}
	return b, nil
}

// unmarshalConfig decodes k into out (a struct with koanf tags), strictly:
// every value must have the key's type; durations parse as "90s", "5m";
// lists come as YAML lists or comma-separated strings. The error names the
// key.
func unmarshalConfig(k *koanf.Koanf, out any) error {
	err := k.UnmarshalWithConf("", out, koanf.UnmarshalConf{
		Tag: "koanf",
		DecoderConfig: &mapstructure.DecoderConfig{
			DecodeHook: mapstructure.ComposeDecodeHookFunc(
				durationHook,
				stringToIntHook,
				stringToBoolHook,
				stringToListHook,
				mapstructure.TextUnmarshallerHookFunc(),
			),
			Result:           out,
			WeaklyTypedInput: true,
			ErrorUnused:      true,
			TagName:          "koanf",
		},
	})
	if err != nil {
		return fmt.Errorf("%w: %s", reyes.ErrConfig, decodeErrorText(err))
	}
	return nil
}

// decodeErrorText turns mapstructure's error (a multi-line list of
// "'key' reason") into one line of "key: reason", sorted by key, so that
// the binaries print a one-line reason that names every offending key.
func decodeErrorText(err error) string {
	var parts []string
	var walk func(error)
	walk = func(e error) {
		switch de := e.(type) {
		case *mapstructure.DecodeError:
			parts = append(parts, de.Name()+": "+de.Unwrap().Error())
		default:
			if j, ok := e.(interface{ Unwrap() []error }); ok {
				for _, x := range j.Unwrap() {
					walk(x)
				}
				return
			}
			if u := errors.Unwrap(e); u != nil {
				walk(u)
				return
			}
			parts = append(parts, strings.ReplaceAll(e.Error(), "\n", " "))
		}
	}
	walk(err)
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

// durationHook parses durations as "90s", "5m", "1h30m". A bare number is
// an error (time.Duration would read 300 as 300ns), except 0.
func durationHook(from, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeOf(time.Duration(0)) || from == to {
		return data, nil
	}
	switch from.Kind() {
	case reflect.String:
		d, err := time.ParseDuration(strings.TrimSpace(data.(string)))
		if err != nil {
			return nil, fmt.Errorf("%q is not a duration (like 90s, 5m or 1h30m)", data)
		}
		return d, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		if reflect.ValueOf(data).IsZero() {
			return time.Duration(0), nil
		}
		return nil, fmt.Errorf("%v is not a duration: give a unit (like %vs or %vm)", data, data, data)
	}
	return data, nil
}

// stringToListHook splits a string into a list at commas, trimming spaces
// around the items ("sg-1, sg-2"), as the environment's lists are split.
func stringToListHook(from, to reflect.Type, data any) (any, error) {
	if from.Kind() != reflect.String || to.Kind() != reflect.Slice {
		return data, nil
	}
	l := splitList(data.(string))
	if l == nil {
		l = []string{}
	}
	return l, nil
}

// stringToIntHook parses whole numbers with a message that shows the value.
func stringToIntHook(from, to reflect.Type, data any) (any, error) {
	if to.Kind() != reflect.Int64 || to == reflect.TypeOf(time.Duration(0)) || from.Kind() != reflect.String {
		return data, nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(data.(string)), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%q is not a whole number", data)
	}
	return n, nil
}

// stringToBoolHook parses booleans strictly ("true"/"false", "1"/"0"), so
// that REYES_DRY_RUN=yes is an error, not a silent false.
func stringToBoolHook(from, to reflect.Type, data any) (any, error) {
	if to.Kind() != reflect.Bool || from.Kind() != reflect.String {
		return data, nil
	}
	b, err := strconv.ParseBool(data.(string))
	if err != nil {
		return nil, fmt.Errorf("%q is not a boolean (true or false)", data)
	}
	return b, nil
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// boolFlag is a flag.Value for boolean options: a bare --flag means true.
type boolFlag struct {
	key string
	set map[string]any
}

func (b boolFlag) String() string { return "" }
func (b boolFlag) Set(v string) error {
	x, err := strconv.ParseBool(v)
	if err != nil {
		return fmt.Errorf("%q is not a boolean", v)
	}
	b.set[b.key] = x
	return nil
}
func (b boolFlag) IsBoolFlag() bool { return true }
