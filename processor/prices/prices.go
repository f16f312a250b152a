// Package prices is the processor's price table: what one message of a
// channel costs to a country, read from a CSV file (`fallback run
// --prices`). A flow takes its steps' prices from it when it starts
// (flow.StepDef.Price); a DLR that carries the provider's own price wins
// over it (docs/cost.md).
package prices

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/fallbackd/fallback/processor/flow"
)

// Header is the first line of a price file: its columns, in this order.
var Header = []string{"channel", "prefix", "price", "currency"}

// MicrosPerUnit is how many micros make one unit of a currency: prices
// are integer millionths, never floats (flow.Price).
const MicrosPerUnit = 1_000_000

// maxPrefixDigits is the most digits of a prefix: a whole E.164 number.
const maxPrefixDigits = 15

// Table maps a channel and an E.164 prefix to a price. The zero Table (or
// nil) knows no price.
type Table struct {
	// byChannel maps channel -> prefix ("+49") -> price.
	byChannel map[string]map[string]flow.Price
	entries   int
}

// Len is the number of entries.
func (t *Table) Len() int {
	if t == nil {
		return 0
	}
	return t.entries
}

// ChannelCurrencies are the table's distinct (channel, currency) pairs,
// sorted.
func (t *Table) ChannelCurrencies() [][2]string {
	if t == nil {
		return nil
	}
	seen := map[[2]string]bool{}
	var out [][2]string
	for channel, byPrefix := range t.byChannel {
		for _, p := range byPrefix {
			if cc := [2]string{channel, p.Currency}; !seen[cc] {
				seen[cc] = true
				out = append(out, cc)
			}
		}
	}
	slices.SortFunc(out, func(a, b [2]string) int { return strings.Compare(a[0]+"/"+a[1], b[0]+"/"+b[1]) })
	return out
}

// Load reads the price file at path (see Parse).
func Load(path string, channels flow.Channels) (*Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("prices: %w", err)
	}
	defer f.Close()
	return Parse(f, path, channels)
}

// Parse reads a price file: CSV, the Header line first, then one entry a
// line: a channel of channels, an E.164 prefix ('+' and 1 to 15 digits:
// a country code, or a longer prefix for part of a country), a price as a
// decimal string with at most six decimals ("0.0075"), and an ISO 4217
// currency code (three capital letters). Lines starting with '#' are
// comments. A channel and prefix may appear once. An error names the
// file, the line and the field. name is the file's name, for errors.
func Parse(r io.Reader, name string, channels flow.Channels) (*Table, error) {
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.FieldsPerRecord = len(Header)
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("prices: %s: empty, want the header line %q", name, strings.Join(Header, ","))
	}
	if err != nil {
		return nil, fmt.Errorf("prices: %s: %w", name, err)
	}
	for i, col := range Header {
		if strings.TrimSpace(header[i]) != col {
			line, _ := cr.FieldPos(0)
			return nil, fmt.Errorf("prices: %s line %d: header %q, want %q", name, line, strings.Join(header, ","), strings.Join(Header, ","))
		}
	}
	t := &Table{byChannel: map[string]map[string]flow.Price{}}
	firstLine := map[string]int{} // channel/prefix -> line
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return t, nil
		}
		if err != nil {
			return nil, fmt.Errorf("prices: %s: %w", name, err)
		}
		line, _ := cr.FieldPos(0)
		bad := func(field, format string, args ...any) error {
			return fmt.Errorf("prices: %s line %d: %s: %s", name, line, field, fmt.Sprintf(format, args...))
		}
		channel, prefix := strings.TrimSpace(rec[0]), strings.TrimSpace(rec[1])
		if _, ok := channels[channel]; !ok {
			return nil, bad("channel", "%q is not a channel (%s)", channel, strings.Join(channels.Names(), ", "))
		}
		if !validPrefix(prefix) {
			return nil, bad("prefix", "%q is not an E.164 prefix ('+' and 1 to %d digits)", prefix, maxPrefixDigits)
		}
		micros, err := ParseMicros(strings.TrimSpace(rec[2]))
		if err != nil {
			return nil, bad("price", "%v", err)
		}
		currency := strings.TrimSpace(rec[3])
		if !ValidCurrency(currency) {
			return nil, bad("currency", "%q is not an ISO 4217 code (three capital letters, e.g. EUR)", currency)
		}
		key := channel + "/" + prefix
		if first, dup := firstLine[key]; dup {
			return nil, bad("prefix", "%s %s is priced on line %d already", channel, prefix, first)
		}
		firstLine[key] = line
		if t.byChannel[channel] == nil {
			t.byChannel[channel] = map[string]flow.Price{}
		}
		t.byChannel[channel][prefix] = flow.Price{Micros: micros, Currency: currency}
		t.entries++
	}
}

func validPrefix(p string) bool {
	if len(p) < 2 || len(p) > maxPrefixDigits+1 || p[0] != '+' {
		return false
	}
	for i := 1; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
	}
	return true
}

// ValidCurrency reports whether c has the form of an ISO 4217 code: three
// capital ASCII letters. (Whether the code is assigned is not checked.)
func ValidCurrency(c string) bool {
	if len(c) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if c[i] < 'A' || c[i] > 'Z' {
			return false
		}
	}
	return true
}

// ParseMicros reads a non-negative decimal price ("0.0075", "12", "1.5")
// as millionths of the unit. More than six decimals are refused unless the
// extra ones are zeros ("0.03330000", as Vonage writes prices): a price
// is never rounded.
func ParseMicros(s string) (int64, error) {
	whole, frac, dot := strings.Cut(s, ".")
	if whole == "" || !digits(whole) || dot && (frac == "" || !digits(frac)) {
		return 0, fmt.Errorf("%q is not a decimal number (digits, then an optional '.' and digits)", s)
	}
	if trimmed := strings.TrimRight(frac, "0"); len(trimmed) > 6 {
		return 0, fmt.Errorf("%q has more than 6 decimals: prices are kept in millionths", s)
	} else {
		frac = trimmed
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || w > (1<<63-1)/MicrosPerUnit-1 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	f := int64(0)
	if frac != "" {
		f, _ = strconv.ParseInt(frac+strings.Repeat("0", 6-len(frac)), 10, 64)
	}
	return w*MicrosPerUnit + f, nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// Lookup is the price of a message of channel to recipient (E.164): the
// entry with the longest prefix of recipient; ok is false when no entry
// matches.
func (t *Table) Lookup(channel, recipient string) (p flow.Price, ok bool) {
	if t == nil {
		return flow.Price{}, false
	}
	byPrefix := t.byChannel[channel]
	if len(byPrefix) == 0 {
		return flow.Price{}, false
	}
	for n := min(len(recipient), maxPrefixDigits+1); n >= 2; n-- {
		if p, ok := byPrefix[recipient[:n]]; ok {
			return p, true
		}
	}
	return flow.Price{}, false
}

// PriceSteps returns steps with each step's Price from the table for
// recipient; steps itself when the table is empty, else a copy (steps may
// be a stored flow's, shared by every request naming it).
func (t *Table) PriceSteps(recipient string, steps []flow.StepDef) []flow.StepDef {
	if t.Len() == 0 {
		return steps
	}
	out := make([]flow.StepDef, len(steps))
	copy(out, steps)
	for i := range out {
		out[i].Price, _ = t.Lookup(out[i].Channel, recipient)
	}
	return out
}

// FromReport is the price a DLR carries (DeliveryReport price_micros and
// currency); unknown when it carries none. A price without a currency, a
// currency without a price, a currency that is not three capital letters
// or a negative price is an error: the caller records the DLR's status
// all the same, without the price.
func FromReport(priceMicros *int64, currency string) (flow.Price, error) {
	switch {
	case priceMicros == nil && currency == "":
		return flow.Price{}, nil
	case priceMicros == nil:
		return flow.Price{}, fmt.Errorf("currency %q without price_micros", currency)
	case currency == "":
		return flow.Price{}, errors.New("price_micros without a currency")
	case !ValidCurrency(currency):
		return flow.Price{}, fmt.Errorf("currency %q is not an ISO 4217 code", currency)
	case *priceMicros < 0:
		return flow.Price{}, fmt.Errorf("price_micros %d is negative", *priceMicros)
	}
	return flow.Price{Micros: *priceMicros, Currency: currency}, nil
}
