package autodelay

// CountryCode is the E.164 country calling code of a number in E.164 form
// ("+447700900123" -> "+44"), "" when the number does not start with '+'
// and a digit. Country codes are prefix-free (ITU-T E.164 assignments):
// 1 and 7 are one digit, the two-digit codes are listed, every other code
// is three digits. North America (+1) and Russia/Kazakhstan (+7) are one
// market each: their operators share the number plan.
//
// The price table (processor/prices) matches the longest prefix its file
// lists, which can be shorter or longer than a country; latencies are
// grouped by country, which every number has, so that an unlisted country
// still gets its own distribution.
func CountryCode(e164 string) string {
	if len(e164) < 2 || e164[0] != '+' || !isDigit(e164[1]) {
		return ""
	}
	switch e164[1] {
	case '1', '7':
		return e164[:2]
	}
	if len(e164) < 3 || !isDigit(e164[2]) {
		return ""
	}
	if twoDigit[e164[1:3]] {
		return e164[:3]
	}
	if len(e164) < 4 || !isDigit(e164[3]) {
		return ""
	}
	return e164[:4]
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// twoDigit are the two-digit country calling codes.
var twoDigit = func() map[string]bool {
	m := map[string]bool{}
	for _, c := range []string{
		"20", "27",
		"30", "31", "32", "33", "34", "36", "39",
		"40", "41", "43", "44", "45", "46", "47", "48", "49",
		"51", "52", "53", "54", "55", "56", "57", "58",
		"60", "61", "62", "63", "64", "65", "66",
		"81", "82", "84", "86",
		"90", "91", "92", "93", "94", "95", "98",
	} {
		m[c] = true
	}
	return m
}()
