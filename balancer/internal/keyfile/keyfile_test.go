package keyfile

import (
	"encoding/asn1"
	"math"
	"os"
	"strings"
	"testing"
)

// pfx builds a PKCS#12 file's outer shape — version, authenticated safe,
// MAC data — with the MAC's iteration count iterations; the safe holds
// nothing a decoder could use.
func pfx(t *testing.T, iterations int64) []byte {
	t.Helper()
	type algorithm struct {
		Algorithm asn1.ObjectIdentifier
		Params    asn1.RawValue `asn1:"optional"`
	}
	type digestInfo struct {
		Algorithm algorithm
		Digest    []byte
	}
	type macData struct {
		Mac        digestInfo
		Salt       []byte
		Iterations int64
	}
	type contentInfo struct {
		ContentType asn1.ObjectIdentifier
		Content     []byte `asn1:"explicit,tag:0"`
	}
	safe, err := asn1.Marshal([]contentInfo{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := asn1.Marshal(struct {
		Version  int
		AuthSafe contentInfo
		MacData  macData
	}{3, contentInfo{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}, safe},
		macData{digestInfo{algorithm{Algorithm: asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}}, make([]byte, 32)}, make([]byte, 8), iterations}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCheckPKCS12 accepts keytool's PKCS#12 files (10,000 iterations) and
// refuses files asking for more key-derivation iterations than the bound
// or for none, and files whose framing is broken, in DER and in BER.
func TestCheckPKCS12(t *testing.T) {
	for _, name := range []string{"../../testdata/keystores/wso2carbon.p12", "../../testdata/keystores/client-truststore.p12"} {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckPKCS12(b); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := CheckPKCS12(pfx(t, MaxPKCS12Iterations)); err != nil {
		t.Errorf("%d iterations: %v", MaxPKCS12Iterations, err)
	}
	// An indefinite-length (BER) SEQUENCE of salt and count, as some
	// Windows exports write their parameters.
	ber := func(count ...byte) []byte {
		b := []byte{0x30, 0x80, 0x04, 0x02, 0xaa, 0xbb, 0x02, byte(len(count))}
		return append(append(b, count...), 0, 0)
	}
	if err := CheckPKCS12(ber(0x27, 0x10)); err != nil {
		t.Errorf("BER, 10,000 iterations: %v", err)
	}
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"MAC, 2^31-1 iterations", pfx(t, math.MaxInt32), "iterations"},
		{"MAC, one more than the bound", pfx(t, MaxPKCS12Iterations+1), "iterations"},
		{"MAC, zero iterations", pfx(t, 0), "not positive"},
		{"MAC, negative iterations", pfx(t, -1), "not positive"},
		{"BER, 2^40 iterations", ber(1, 0, 0, 0, 0, 0), "iterations"},
		{"BER, no end of contents", ber(1)[:9], "without an end"},
		{"a length past the end", []byte{0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x02, 0x01, 0x01}, "past the end"},
		{"nested too deeply", nested(40), "nested too deeply"},
		{"not BER", []byte("hello"), "past the end"},
		{"a multi-byte tag", []byte{0x1f, 0x81, 0x00}, "malformed"},
	} {
		err := CheckPKCS12(tc.data)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "PKCS#12: ") {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

// nested returns n SEQUENCEs, each inside the one before.
func nested(n int) []byte {
	b := []byte{0x05, 0x00} // NULL
	for range n {
		b = append([]byte{0x30, byte(len(b))}, b...)
	}
	return b
}

// FuzzCheckPKCS12: the walker ends on any bytes without a panic, and an
// accepted input, wrapped in a SEQUENCE after a salt-like OCTET STRING and
// a count above the bound, is refused: the bound holds wherever the
// walker reads. Seeded with keytool's files and BER shapes.
func FuzzCheckPKCS12(f *testing.F) {
	for _, name := range []string{"../../testdata/keystores/wso2carbon.p12", "../../testdata/keystores/client-truststore.p12"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x30, 0x80, 0x04, 0x02, 0xaa, 0xbb, 0x02, 0x02, 0x27, 0x10, 0, 0})
	f.Add([]byte{0x24, 0x80, 0x04, 0x01, 0x30, 0x04, 0x01, 0x00, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		if CheckPKCS12(data) != nil || len(data) > 1<<16 {
			return
		}
		// SEQUENCE { data, OCTET STRING, INTEGER 2^31-1 }, definite length.
		inner := append(append([]byte(nil), data...), 0x04, 0x01, 0xaa, 0x02, 0x04, 0x7f, 0xff, 0xff, 0xff)
		wrapped := append([]byte{0x30, 0x83, byte(len(inner) >> 16), byte(len(inner) >> 8), byte(len(inner))}, inner...)
		if err := CheckPKCS12(wrapped); err == nil {
			t.Fatal("a count of 2^31-1 after accepted input was accepted")
		}
	})
}

// FuzzCheckJKS: the JKS framing check ends on any bytes without a panic.
func FuzzCheckJKS(f *testing.F) {
	for _, name := range []string{"../../testdata/keystores/wso2carbon.jks", "../../testdata/keystores/client-truststore.jks"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(jksMagic)
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := CheckJKS(data); err == nil && !IsJKS(data) {
			t.Fatal("accepted a file without the JKS magic")
		}
	})
}
