package prices

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fallbackd/fallback/processor/flow"
)

const header = "channel,prefix,price,currency\n"

func parse(t *testing.T, body string) (*Table, error) {
	t.Helper()
	return Parse(strings.NewReader(body), "prices.csv", flow.DefaultChannels())
}

// TestLookupLongestPrefixWins: the entry with the longest prefix of the
// recipient prices it, per channel; no match is unknown.
func TestLookupLongestPrefixWins(t *testing.T) {
	tab, err := parse(t, header+
		"# comments and spaces are allowed\n"+
		"sms, +1, 0.0075, USD\n"+
		"sms,+1876,0.12,USD\n"+
		"sms,+49,0.0785,EUR\n"+
		"whatsapp,+1,0.025,USD\n"+
		"whatsapp,+4915,0.03330000,EUR\n")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		channel, to string
		want        flow.Price
		ok          bool
	}{
		{"sms", "+18765551234", flow.Price{Micros: 120_000, Currency: "USD"}, true},
		{"sms", "+12125551234", flow.Price{Micros: 7_500, Currency: "USD"}, true},
		{"whatsapp", "+18765551234", flow.Price{Micros: 25_000, Currency: "USD"}, true},
		{"whatsapp", "+4915112345678", flow.Price{Micros: 33_300, Currency: "EUR"}, true},
		{"whatsapp", "+4930123456", flow.Price{}, false},
		{"rcs", "+4915112345678", flow.Price{}, false},
		{"sms", "+33612345678", flow.Price{}, false},
	} {
		got, ok := tab.Lookup(c.channel, c.to)
		if got != c.want || ok != c.ok {
			t.Errorf("%s %s: %+v %v, want %+v %v", c.channel, c.to, got, ok, c.want, c.ok)
		}
	}
	if tab.Len() != 5 {
		t.Errorf("Len %d, want 5", tab.Len())
	}

	// PriceSteps copies: the steps it was given (a stored flow's) keep no price.
	steps := []flow.StepDef{{Channel: "whatsapp"}, {Channel: "sms"}}
	priced := tab.PriceSteps("+4915112345678", steps)
	if steps[0].Price.Known() || priced[0].Price != (flow.Price{Micros: 33_300, Currency: "EUR"}) ||
		priced[1].Price != (flow.Price{Micros: 78_500, Currency: "EUR"}) {
		t.Fatalf("PriceSteps: given %+v, priced %+v", steps, priced)
	}
	var none *Table
	if got := none.PriceSteps("+49", steps); &got[0] != &steps[0] {
		t.Fatal("no table: the steps are copied")
	}
}

// TestParseMicros: decimal strings to millionths, never rounded.
func TestParseMicros(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "0.0075": 7_500, "12": 12_000_000, "1.5": 1_500_000,
		"0.000001": 1, "0.03330000": 33_300, "9223372036853.775807": 9_223_372_036_853_775_807} {
		if got, err := ParseMicros(in); err != nil || got != want {
			t.Errorf("%q: %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", ".5", "1.", "-1", "+1", "1,5", "1e3", "0.0000001", "0.12345678", "abc",
		"9223372036854.775807", "99999999999999999999"} {
		if got, err := ParseMicros(in); err == nil {
			t.Errorf("%q: %d, want an error", in, got)
		}
	}
}

// TestParseErrorsNameTheLineAndField: each bad file is refused with an
// error naming the file, the line and what is wrong.
func TestParseErrorsNameTheLineAndField(t *testing.T) {
	for name, c := range map[string]struct{ body, want string }{
		"empty":             {"", "prices.csv: empty, want the header line"},
		"wrong header":      {"channel,country,price,currency\n", `prices.csv line 1: header "channel,country,price,currency"`},
		"unknown channel":   {header + "sms,+49,0.07,EUR\nfax,+49,0.07,EUR\n", `prices.csv line 3: channel: "fax" is not a channel`},
		"prefix without +":  {header + "sms,49,0.07,EUR\n", `prices.csv line 2: prefix: "49" is not an E.164 prefix`},
		"prefix too long":   {header + "sms,+1234567890123456,0.07,EUR\n", "line 2: prefix"},
		"prefix letters":    {header + "sms,+4a,0.07,EUR\n", "line 2: prefix"},
		"price not decimal": {header + "sms,+49,0,07,EUR\n", "line 2"},
		"price float form":  {header + "sms,+49,7e-2,EUR\n", `prices.csv line 2: price: "7e-2" is not a decimal number`},
		"price negative":    {header + "sms,+49,-0.07,EUR\n", "line 2: price"},
		"price 7 decimals":  {header + "sms,+49,0.0000001,EUR\n", "line 2: price: \"0.0000001\" has more than 6 decimals"},
		"currency lower":    {header + "sms,+49,0.07,eur\n", `prices.csv line 2: currency: "eur" is not an ISO 4217 code`},
		"currency missing":  {header + "sms,+49,0.07,\n", "line 2: currency"},
		"duplicate":         {header + "sms,+49,0.07,EUR\nwhatsapp,+49,0.07,EUR\nsms,+49,0.08,EUR\n", "prices.csv line 4: prefix: sms +49 is priced on line 2 already"},
		"fields missing":    {header + "sms,+49,0.07\n", "prices.csv"},
	} {
		_, err := parse(t, c.body)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to contain %q", name, err, c.want)
		}
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.csv"), flow.DefaultChannels()); err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("missing file: %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok || u.Unwrap() == nil {
			return err
		}
		err = u.Unwrap()
	}
}

// TestFromReport: a DLR's price is used only when whole and sane.
func TestFromReport(t *testing.T) {
	micros := func(v int64) *int64 { return &v }
	if p, err := FromReport(nil, ""); err != nil || p.Known() {
		t.Fatalf("no price: %+v %v", p, err)
	}
	if p, err := FromReport(micros(0), "EUR"); err != nil || p != (flow.Price{Currency: "EUR"}) || !p.Known() {
		t.Fatalf("price 0: %+v %v", p, err)
	}
	for name, c := range map[string]struct {
		micros   *int64
		currency string
	}{"no currency": {micros(1), ""}, "no price": {nil, "EUR"}, "bad currency": {micros(1), "euro"}, "negative": {micros(-1), "EUR"}} {
		if p, err := FromReport(c.micros, c.currency); err == nil || p.Known() {
			t.Errorf("%s: %+v %v, want an error and no price", name, p, err)
		}
	}
}
