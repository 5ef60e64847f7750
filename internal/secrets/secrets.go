// Package secrets encrypts every credential and secret variable Slipway
// stores. It uses envelope encryption with AES-256-GCM: each value gets its
// own random data key, the data key is sealed with a master key (the key
// encryption key), and the sealed value records which master key sealed it
// so master keys can rotate without re-encrypting every value at once.
//
// The master keys live in DATA/master.key (mode 0600, one "id:base64key"
// per line, newest last) or come from SLIPWAY_MASTER_KEY; they never reach
// the database.
package secrets

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// format version of sealed values.
const version byte = 1

// Keyring holds master keys: the newest seals, any of them opens.
type Keyring struct {
	current string
	keys    map[string][]byte
}

// ErrDecrypt is returned when a value cannot be opened: tampered, truncated,
// or sealed by a master key this keyring does not hold.
var ErrDecrypt = errors.New("secrets: cannot decrypt value")

// NewKeyring builds a keyring from id→32-byte keys; current names the key
// that seals new values.
func NewKeyring(current string, keys map[string][]byte) (*Keyring, error) {
	if _, ok := keys[current]; !ok {
		return nil, fmt.Errorf("secrets: current key %q not in keyring", current)
	}
	for id, k := range keys {
		if len(k) != 32 {
			return nil, fmt.Errorf("secrets: key %q is %d bytes, want 32", id, len(k))
		}
		if id == "" || strings.ContainsAny(id, ":\n") || len(id) > 255 {
			return nil, fmt.Errorf("secrets: invalid key id %q", id)
		}
	}
	return &Keyring{current: current, keys: keys}, nil
}

// LoadOrCreate reads the keyring from path, creating it with one fresh key
// (mode 0600) when it does not exist. When envKey is non-empty (the value
// of SLIPWAY_MASTER_KEY, "id:base64" lines separated by commas) it is used
// instead and nothing is written.
func LoadOrCreate(path, envKey string) (*Keyring, error) {
	if envKey != "" {
		return parse(strings.ReplaceAll(envKey, ",", "\n"))
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		_, line, err := newKeyLine()
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("secrets: create key directory: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("secrets: create master key file: %w", err)
		}
		if _, err := f.WriteString(line); err != nil {
			f.Close()
			return nil, fmt.Errorf("secrets: write master key file: %w", err)
		}
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("secrets: write master key file: %w", err)
		}
		data = []byte(line)
	} else if err != nil {
		return nil, fmt.Errorf("secrets: read master key file: %w", err)
	}
	return parse(string(data))
}

// Rotate appends a fresh master key to the key file at path; values sealed
// from now on use it, older values still open. Returns the new key id.
func Rotate(path string) (string, error) {
	id, line, err := newKeyLine()
	if err != nil {
		return "", err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return "", fmt.Errorf("secrets: open master key file: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(line); err != nil {
		return "", fmt.Errorf("secrets: append master key: %w", err)
	}
	return id, nil
}

func newKeyLine() (id, line string, err error) {
	key := make([]byte, 32)
	idb := make([]byte, 6)
	if _, err := rand.Read(key); err != nil {
		return "", "", err
	}
	if _, err := rand.Read(idb); err != nil {
		return "", "", err
	}
	id = fmt.Sprintf("k%x", idb)
	return id, id + ":" + base64.StdEncoding.EncodeToString(key) + "\n", nil
}

func parse(text string) (*Keyring, error) {
	keys := map[string][]byte{}
	var current string
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, b64, ok := strings.Cut(line, ":")
		if !ok {
			return nil, errors.New("secrets: malformed master key line (want id:base64)")
		}
		k, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return nil, fmt.Errorf("secrets: master key %q: %w", id, err)
		}
		keys[id] = k
		current = id
	}
	if current == "" {
		return nil, errors.New("secrets: no master key")
	}
	return NewKeyring(current, keys)
}

// Seal encrypts plaintext. aad binds the value to its place (for example
// "integration:int_x:secret") so a sealed value copied into another row
// does not open there.
//
// Layout: version | len(keyID) | keyID | nonce(12) | sealed DEK (32+16) | nonce(12) | ciphertext.
func (k *Keyring) Seal(plaintext, aad []byte) ([]byte, error) {
	dek := make([]byte, 32)
	if _, err := rand.Read(dek); err != nil {
		return nil, err
	}
	kek, err := gcm(k.keys[k.current])
	if err != nil {
		return nil, err
	}
	data, err := gcm(dek)
	if err != nil {
		return nil, err
	}
	n1 := make([]byte, 12)
	n2 := make([]byte, 12)
	if _, err := rand.Read(n1); err != nil {
		return nil, err
	}
	if _, err := rand.Read(n2); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	out.WriteByte(version)
	out.WriteByte(byte(len(k.current)))
	out.WriteString(k.current)
	out.Write(n1)
	out.Write(kek.Seal(nil, n1, dek, []byte(k.current)))
	out.Write(n2)
	out.Write(data.Seal(nil, n2, plaintext, aad))
	return out.Bytes(), nil
}

// Open decrypts a value produced by Seal with the same aad.
func (k *Keyring) Open(sealed, aad []byte) ([]byte, error) {
	if len(sealed) < 2 || sealed[0] != version {
		return nil, ErrDecrypt
	}
	idLen := int(sealed[1])
	rest := sealed[2:]
	if len(rest) < idLen+12+48+12+16 {
		return nil, ErrDecrypt
	}
	id := string(rest[:idLen])
	rest = rest[idLen:]
	master, ok := k.keys[id]
	if !ok {
		return nil, ErrDecrypt
	}
	kek, err := gcm(master)
	if err != nil {
		return nil, err
	}
	dek, err := kek.Open(nil, rest[:12], rest[12:60], []byte(id))
	if err != nil {
		return nil, ErrDecrypt
	}
	data, err := gcm(dek)
	if err != nil {
		return nil, err
	}
	plain, err := data.Open(nil, rest[60:72], rest[72:], aad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return plain, nil
}

// NeedsRewrap reports whether a sealed value was sealed by an older master
// key and should be re-sealed with the current one.
func (k *Keyring) NeedsRewrap(sealed []byte) bool {
	if len(sealed) < 2 || int(sealed[1])+2 > len(sealed) {
		return false
	}
	return string(sealed[2:2+int(sealed[1])]) != k.current
}

func gcm(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	return cipher.NewGCM(block)
}
