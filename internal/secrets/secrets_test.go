package secrets

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestSealOpenRotate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.key")
	k1, err := LoadOrCreate(path, "")
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %v, %v; want 0600", st.Mode().Perm(), err)
	}
	plain := []byte("glpat-very-secret")
	sealed, err := k1.Seal(plain, []byte("integration:a"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, plain) {
		t.Fatal("sealed value contains the plaintext")
	}
	got, err := k1.Open(sealed, []byte("integration:a"))
	if err != nil || string(got) != string(plain) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := k1.Open(sealed, []byte("integration:b")); err != ErrDecrypt {
		t.Fatalf("open with other aad: %v, want ErrDecrypt", err)
	}
	tampered := append([]byte{}, sealed...)
	tampered[len(tampered)-1] ^= 1
	if _, err := k1.Open(tampered, []byte("integration:a")); err != ErrDecrypt {
		t.Fatalf("tampered: %v, want ErrDecrypt", err)
	}
	for i := range sealed {
		if _, err := k1.Open(sealed[:i], []byte("integration:a")); err == nil {
			t.Fatalf("truncated to %d bytes opened", i)
		}
	}

	if _, err := Rotate(path); err != nil {
		t.Fatal(err)
	}
	k2, err := LoadOrCreate(path, "")
	if err != nil {
		t.Fatal(err)
	}
	if !k2.NeedsRewrap(sealed) {
		t.Fatal("value sealed with the old key should need a rewrap")
	}
	if got, err := k2.Open(sealed, []byte("integration:a")); err != nil || string(got) != string(plain) {
		t.Fatalf("old value after rotation: %q, %v", got, err)
	}
	resealed, err := k2.Seal(plain, []byte("integration:a"))
	if err != nil || k2.NeedsRewrap(resealed) {
		t.Fatalf("reseal: %v", err)
	}
	if _, err := k1.Open(resealed, []byte("integration:a")); err != ErrDecrypt {
		t.Fatal("old keyring opened a value sealed by a key it does not hold")
	}
}

func FuzzOpen(f *testing.F) {
	k, err := LoadOrCreate(filepath.Join(f.TempDir(), "k"), "")
	if err != nil {
		f.Fatal(err)
	}
	s, _ := k.Seal([]byte("x"), nil)
	f.Add(s)
	f.Add([]byte{1, 200})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = k.Open(b, nil)
		_ = k.NeedsRewrap(b)
	})
}
