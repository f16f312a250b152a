package processor

// MaskPhone keeps a number recognisable in logs without disclosing it:
// the country code's first digits and the last two digits stay.
func MaskPhone(n string) string {
	if len(n) <= 5 {
		return "***"
	}
	b := []byte(n)
	for i := 3; i < len(b)-2; i++ {
		b[i] = '*'
	}
	return string(b)
}
