package cliconfig

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	// go.yaml.in/yaml/v3 is the YAML project's maintained continuation of
	// gopkg.in/yaml.v3, already in the module graph (through
	// testcontainers and prometheus). Its yaml.Node gives each key's line
	// and the value's text as written, so a file value goes through the
	// flag's own parser, exactly like a flag or a FALLBACK_* variable.
	"go.yaml.in/yaml/v3"
)

// ConfigFlag is the flag naming the configuration file; ConfigEnv its
// variable.
const (
	ConfigFlag = "config"
	ConfigEnv  = "FALLBACK_CONFIG"
)

// RegisterConfig adds --config (env FALLBACK_CONFIG) to fs: a YAML file
// whose keys are the command's flag names. ApplyFile reads it after the
// command line is parsed.
func RegisterConfig(fs *flag.FlagSet) {
	fs.String(ConfigFlag, "", "YAML file of settings, keys named as the flags (brokers: host:9092); a flag or FALLBACK_* variable wins over it (env "+ConfigEnv+")")
	if v, ok := os.LookupEnv(ConfigEnv); ok {
		_ = fs.Set(ConfigFlag, v) // a string: cannot fail
	}
}

// ApplyConfig reads the file --config names, if any (ApplyFile).
func ApplyConfig(fs *flag.FlagSet) error {
	f := fs.Lookup(ConfigFlag)
	if f == nil || f.Value.String() == "" {
		return nil
	}
	return ApplyFile(fs, f.Value.String())
}

// ApplyFile sets the flags of fs from the YAML file at path: a mapping
// from flag names (without dashes) to single values, each parsed by its
// flag's own parser. A flag already set, on the command line or by its
// FALLBACK_* variable, keeps that value: the precedence is flag, then
// variable, then file, then default. A key that names no flag of fs, or a
// value that does not parse (even one a flag or variable overrides), is an
// error naming the file, the key and the flag.
func ApplyFile(fs *flag.FlagSet, path string) error {
	body, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--%s (%s): %w", ConfigFlag, ConfigEnv, err)
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) { // empty file: no settings
			return nil
		}
		return fmt.Errorf("config file %s: %w", path, err)
	}
	if len(doc.Content) == 0 {
		return nil
	}
	top := doc.Content[0]
	if top.Kind == yaml.ScalarNode && top.Tag == "!!null" {
		return nil
	}
	if top.Kind != yaml.MappingNode {
		return fmt.Errorf("config file %s: line %d: want a mapping of flag names to values (brokers: host:9092)", path, top.Line)
	}
	set := map[string]bool{} // set on the command line or by a variable
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	seen := map[string]int{}
	var errs []error
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		key := k.Value
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("config file %s: line %d: key %q (--%s): %s", path, k.Line, key, strings.TrimLeft(key, "-"), fmt.Sprintf(format, args...)))
		}
		f := fs.Lookup(key)
		switch {
		case k.Kind != yaml.ScalarNode:
			errs = append(errs, fmt.Errorf("config file %s: line %d: a key must be a flag name", path, k.Line))
			continue
		case f == nil:
			bad("no such flag for fallback %s", fs.Name())
			continue
		case key == ConfigFlag:
			bad("a configuration file cannot name another")
			continue
		case seen[key] != 0:
			bad("given twice (first at line %d)", seen[key])
			continue
		case v.Kind != yaml.ScalarNode:
			bad("want a single value, not a list or mapping (several brokers are comma-separated)")
			continue
		}
		seen[key] = k.Line
		value := v.Value
		if v.Tag == "!!null" {
			value = ""
		}
		if set[key] {
			if err := checkValue(f, value); err != nil {
				bad("%q is %s", value, err)
			}
			continue
		}
		if err := fs.Set(key, value); err != nil {
			if kind := valueKind(f); kind != "" {
				bad("%q is %s", value, kind)
			} else {
				bad("%q: %v", value, err)
			}
		}
	}
	return errors.Join(errs...)
}

// checkValue parses value as f would, without setting f: a file value a
// flag or variable overrides must still be valid.
func checkValue(f *flag.Flag, value string) error {
	kind := valueKind(f)
	scratch := flag.NewFlagSet("check", flag.ContinueOnError)
	scratch.SetOutput(io.Discard)
	getter, _ := f.Value.(flag.Getter)
	if getter == nil {
		return nil
	}
	switch getter.Get().(type) {
	case bool:
		scratch.Bool("v", false, "")
	case int:
		scratch.Int("v", 0, "")
	case int64:
		scratch.Int64("v", 0, "")
	case uint:
		scratch.Uint("v", 0, "")
	case uint64:
		scratch.Uint64("v", 0, "")
	case float64:
		scratch.Float64("v", 0, "")
	case time.Duration:
		scratch.Duration("v", 0, "")
	default:
		return nil // a string, or a value of its own: not checked here
	}
	if err := scratch.Set("v", value); err != nil {
		if kind == "" {
			return err
		}
		return errors.New(kind)
	}
	return nil
}

// valueKind describes what a value of f must be, for errors: "not a
// boolean (true or false)" and so on; "" for a string or a value of its own.
func valueKind(f *flag.Flag) string {
	getter, _ := f.Value.(flag.Getter)
	if getter == nil {
		return ""
	}
	switch getter.Get().(type) {
	case bool:
		return "not a boolean (true or false)"
	case int, int64, uint, uint64:
		return "not an integer"
	case float64:
		return "not a number"
	case time.Duration:
		return "not a duration (such as 500ms, 10s, 5m or 24h)"
	}
	return ""
}

// ReadEnv sets the named flags of fs, a command's own, from their
// FALLBACK_* variables, as RegisterGroups does for the shared ones: the
// flag is then set, so a configuration file does not override it, and a
// value that does not parse is reported by Check. A name fs does not
// define panics, as defining a flag twice does: it is a mistake in the
// command's code (a misspelt or renamed flag whose variable would
// silently be ignored), and every test building the flag set finds it.
func (c *Common) ReadEnv(fs *flag.FlagSet, names ...string) {
	for _, name := range names {
		f := fs.Lookup(name)
		if f == nil {
			panic(fmt.Sprintf("cliconfig: ReadEnv: flag set %s defines no flag --%s", fs.Name(), name))
		}
		c.fromEnv(fs, f)
	}
}
