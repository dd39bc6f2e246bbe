package keyfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// jksMagic starts every JKS keystore.
var jksMagic = []byte{0xfe, 0xed, 0xfe, 0xed}

// IsJKS reports whether data starts as a JKS keystore does.
func IsJKS(data []byte) bool { return bytes.HasPrefix(data, jksMagic) }

// CheckJKS walks the framing of a JKS keystore and refuses one whose
// lengths or counts exceed the bytes it has: the decoder allocates what a
// length field says before reading, so a corrupt or hostile file could
// otherwise make it allocate gigabytes.
func CheckJKS(data []byte) error {
	r := jksReader{b: data}
	if r.u32() != binary.BigEndian.Uint32(jksMagic) {
		return errors.New("not a JKS keystore")
	}
	version := r.u32()
	if version != 1 && version != 2 {
		return fmt.Errorf("JKS version %d: want 1 or 2", version)
	}
	cert := func() {
		if version == 2 {
			r.skip(int(r.u16())) // the certificate type
		}
		r.skip(int(r.u32()))
	}
	for n := r.u32(); n > 0 && r.err == nil; n-- {
		tag := r.u32()
		r.skip(int(r.u16())) // alias
		r.skip(8)            // creation time
		switch tag {
		case 1: // private key
			r.skip(int(r.u32()))
			certs := r.u32()
			if uint64(certs)*4 > uint64(len(r.b)) {
				return errors.New("JKS: certificate count larger than the file")
			}
			for ; certs > 0 && r.err == nil; certs-- {
				cert()
			}
		case 2: // trusted certificate
			cert()
		default:
			return fmt.Errorf("JKS: unknown entry tag %d", tag)
		}
	}
	r.skip(20) // the SHA-1 digest
	return r.err
}

// jksReader reads the big-endian framing of a JKS keystore; after the
// first read past the end, err is set and every read returns 0.
type jksReader struct {
	b   []byte
	err error
}

func (r *jksReader) take(n int) []byte {
	if r.err != nil || n < 0 || n > len(r.b) {
		r.err = errors.New("JKS: a length runs past the end of the file")
		return nil
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

func (r *jksReader) skip(n int) { r.take(n) }

func (r *jksReader) u16() uint16 {
	if p := r.take(2); p != nil {
		return binary.BigEndian.Uint16(p)
	}
	return 0
}

func (r *jksReader) u32() uint32 {
	if p := r.take(4); p != nil {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}

// MaxPKCS12Iterations bounds the key-derivation iterations a PKCS#12 file
// may ask for. keytool writes 10,000, OpenSSL 2,048; the decoder runs
// whatever the file says, once per encrypted part, and a file asking for
// 2^31 would hold a start or a reload for hours.
const MaxPKCS12Iterations = 2_000_000

// CheckPKCS12 walks the BER framing of a PKCS#12 file and refuses one whose
// lengths exceed its bytes, that nests too deeply, or that asks for more
// than MaxPKCS12Iterations iterations of a key derivation. The counts it
// sees are those outside encryption: the MAC's, each encrypted part's
// (PBES1 and PBES2 parameters alike: a SEQUENCE whose salt, an OCTET
// STRING, is followed by the count, an INTEGER) and, in the unencrypted
// parts, each shrouded key's. The parts inside an encrypted part can only
// be read after decrypting it, which the outer count, bounded here,
// already paid for.
func CheckPKCS12(data []byte) error {
	w := berWalker{budget: 1 << 20}
	if _, _, err := w.walk(data, 0, false, false); err != nil {
		return fmt.Errorf("PKCS#12: %w", err)
	}
	return nil
}

// berWalker walks BER: tags, definite and indefinite lengths, and the
// contents of OCTET STRINGs that are BER themselves.
type berWalker struct {
	budget int // elements left to look at
}

// berElement is one element: its tag byte and, for a primitive, its
// contents; a constructed OCTET STRING's segments are joined.
type berElement struct {
	tag      byte
	contents []byte // primitive contents, or an OCTET STRING's bytes
	children []berElement
}

// berRefusal is a reason to refuse the whole file: a bound exceeded, or an
// iteration count too high. Other errors met inside an OCTET STRING only
// say that its bytes are not BER.
type berRefusal struct{ msg string }

func (e *berRefusal) Error() string { return e.msg }

var (
	errBERShape       = errors.New("malformed encoding")
	errEndOfContents  = errors.New("end-of-contents outside an indefinite length")
	errLengthOverflow = errors.New("a length runs past the end of the file")
)

// walk parses the elements of b at nesting depth, up to an end-of-contents
// marker when indefinite is set, and returns them and the bytes after the
// marker. seg says that they are the segments of a constructed OCTET
// STRING: pieces of its bytes, read as BER only once joined.
func (w *berWalker) walk(b []byte, depth int, indefinite, seg bool) ([]berElement, []byte, error) {
	var out []berElement
	for {
		if len(b) == 0 {
			if indefinite {
				return nil, nil, errors.New("indefinite length without an end")
			}
			return out, nil, nil
		}
		if b[0] == 0 { // end of contents
			if len(b) < 2 || b[1] != 0 {
				return nil, nil, errBERShape
			}
			if !indefinite {
				return nil, nil, errEndOfContents
			}
			return out, b[2:], nil
		}
		e, rest, err := w.element(b, depth, seg)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, e)
		b = rest
	}
}

// element parses the element that b starts with; seg as for walk.
func (w *berWalker) element(b []byte, depth int, seg bool) (berElement, []byte, error) {
	if w.budget--; w.budget < 0 {
		return berElement{}, nil, &berRefusal{"too many elements"}
	}
	if depth > 32 {
		return berElement{}, nil, &berRefusal{"nested too deeply"}
	}
	if len(b) < 2 || b[0]&0x1f == 0x1f { // no multi-byte tags in PKCS#12
		return berElement{}, nil, errBERShape
	}
	e := berElement{tag: b[0]}
	constructed := e.tag&0x20 != 0
	octets := e.tag&^0x20 == 0x04
	n, hdr, indefinite, err := berLength(b[1:])
	if err != nil {
		return berElement{}, nil, err
	}
	b = b[1+hdr:]
	switch {
	case indefinite && !constructed:
		return berElement{}, nil, errBERShape
	case indefinite:
		if e.children, b, err = w.walk(b, depth+1, true, octets); err != nil {
			return berElement{}, nil, err
		}
	case n > len(b):
		return berElement{}, nil, errLengthOverflow
	case constructed:
		if e.children, _, err = w.walk(b[:n], depth+1, false, octets); err != nil {
			return berElement{}, nil, err
		}
		b = b[n:]
	default:
		e.contents, b = b[:n], b[n:]
	}
	if octets {
		if constructed { // BER's segments, joined
			for _, c := range e.children {
				e.contents = append(e.contents, c.contents...)
			}
			e.children = nil
		}
		if seg {
			return e, b, nil // read as BER once joined, by the OCTET STRING they make
		}
		// ContentInfo's data and a bag's value are BER inside an OCTET
		// STRING; a salt or a digest is not, and stays bytes.
		var err error
		if e.children, _, err = w.walk(e.contents, depth+1, false, false); err != nil {
			if r := (*berRefusal)(nil); errors.As(err, &r) {
				return berElement{}, nil, err
			}
			e.children = nil
		}
	}
	if e.tag == 0x30 { // SEQUENCE
		if err := checkIterations(e.children); err != nil {
			return berElement{}, nil, err
		}
	}
	return e, b, nil
}

// checkIterations refuses an iteration count above the bound among the
// elements of a SEQUENCE: an INTEGER right after an OCTET STRING.
func checkIterations(elems []berElement) error {
	for i := 1; i < len(elems); i++ {
		if elems[i].tag != 0x02 || elems[i-1].tag&^0x20 != 0x04 {
			continue
		}
		v := elems[i].contents
		if len(v) == 0 || v[0]&0x80 != 0 {
			return &berRefusal{"an iteration count that is not positive"}
		}
		var n uint64
		for _, c := range v {
			if n > MaxPKCS12Iterations {
				break
			}
			n = n<<8 | uint64(c)
		}
		if n == 0 {
			return &berRefusal{"an iteration count that is not positive"}
		}
		if n > MaxPKCS12Iterations {
			return &berRefusal{fmt.Sprintf("more than %d key-derivation iterations", MaxPKCS12Iterations)}
		}
	}
	return nil
}

// berLength reads a length field: the length, the field's size, and
// whether it is indefinite.
func berLength(b []byte) (n, size int, indefinite bool, err error) {
	if len(b) == 0 {
		return 0, 0, false, errBERShape
	}
	c := b[0]
	switch {
	case c < 0x80:
		return int(c), 1, false, nil
	case c == 0x80:
		return 0, 1, true, nil
	}
	k := int(c & 0x7f)
	if k > 4 || k >= len(b) {
		return 0, 0, false, errBERShape
	}
	for _, d := range b[1 : 1+k] {
		n = n<<8 | int(d)
	}
	return n, 1 + k, false, nil
}
