package console

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode"

	"golang.org/x/crypto/bcrypt"
)

// Role says what a user may do. Roles are ordered: each can do what the
// one before it can.
type Role string

const (
	// RoleViewer reads every page and runs test runs, changes nothing.
	RoleViewer Role = "viewer"
	// RoleEditor also changes flows, senders and templates.
	RoleEditor Role = "editor"
	// RoleAdmin also sees the template params and metadata values of a
	// flow in the lookup (a param is often an OTP code).
	RoleAdmin Role = "admin"
)

var roleRank = map[Role]int{RoleViewer: 1, RoleEditor: 2, RoleAdmin: 3}

// Can reports whether r includes what need allows.
func (r Role) Can(need Role) bool { return roleRank[r] >= roleRank[need] && roleRank[r] > 0 }

// User is one person who may log in. PasswordHash is a bcrypt hash
// (HashPassword makes one).
type User struct {
	Name         string
	Role         Role
	PasswordHash string
}

// HashCost is the bcrypt cost of HashPassword: about a quarter of a second
// per login on a 2020s core, which makes guessing slow on top of the rate
// limit.
const HashCost = 12

// HashPassword returns the bcrypt hash of a password for the users file
// (`fallback console hash-password`). bcrypt reads at most 72 bytes, so a
// longer password is refused rather than cut short without a word.
func HashPassword(password string) (string, error) {
	if password == "" {
		return "", errors.New("console: the password is empty")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), HashCost)
	if err != nil {
		return "", fmt.Errorf("console: hash password: %w", err)
	}
	return string(h), nil
}

// LoadUsers reads a users file: one user a line, `name:role:bcrypt-hash`,
// roles viewer, editor or admin; blank lines and lines starting with #
// are skipped. Errors name the file and line, never the hash.
func LoadUsers(path string) ([]User, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("console: users file: %w", err)
	}
	defer f.Close()
	users, err := ParseUsers(f)
	if err != nil {
		return nil, fmt.Errorf("console: users file %s: %w", path, err)
	}
	return users, nil
}

// ParseUsers reads the users file format of LoadUsers.
func ParseUsers(r io.Reader) ([]User, error) {
	var users []User
	seen := map[string]bool{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			return nil, fmt.Errorf("line %d: want name:role:bcrypt-hash", n)
		}
		u := User{Name: parts[0], Role: Role(parts[1]), PasswordHash: parts[2]}
		if err := checkUser(u); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if seen[u.Name] {
			return nil, fmt.Errorf("line %d: user %q is listed twice", n, u.Name)
		}
		seen[u.Name] = true
		users = append(users, u)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return users, nil
}

// checkUser checks one user as New and ParseUsers take it.
func checkUser(u User) error {
	if !validUserName(u.Name) {
		return fmt.Errorf("user name %q: want 1 to 64 printable characters without ':' or spaces", clipText(u.Name))
	}
	if _, ok := roleRank[u.Role]; !ok {
		return fmt.Errorf("user %s: role %q is not viewer, editor or admin", u.Name, clipText(string(u.Role)))
	}
	if _, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil {
		return fmt.Errorf("user %s: the password hash is not a bcrypt hash (fallback console hash-password makes one)", u.Name)
	}
	return nil
}

func validUserName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for _, r := range name {
		if r == ':' || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// clipText keeps text from outside short and printable in an error.
func clipText(s string) string {
	s = strings.ToValidUTF8(s, "?")
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return '?'
	}, s)
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
