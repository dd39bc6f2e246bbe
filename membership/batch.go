package membership

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The wire format of the node's user messages: a type byte, the sender's
// name as a uvarint length and its bytes, then a body; a batch's body is
// one or more frames, each a uvarint length and that many bytes.

// appendHeader appends the start of a user message: its type byte and the
// sender's name.
func appendHeader(dst []byte, typ byte, name string) []byte {
	dst = append(dst, typ)
	dst = binary.AppendUvarint(dst, uint64(len(name)))
	return append(dst, name...)
}

// appendFrame appends msg with its length.
func appendFrame(dst, msg []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(msg)))
	return append(dst, msg...)
}

// uvarintLen is the length of x as a uvarint.
func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// splitHeader returns the sender's name and the body of a user message b,
// whose type byte has been checked.
func splitHeader(b []byte) (name, body []byte, err error) {
	l, k := binary.Uvarint(b[1:])
	if k <= 0 {
		return nil, nil, errors.New("message truncated in its sender's name length")
	}
	rest := b[1+k:]
	if l > uint64(len(rest)) {
		return nil, nil, fmt.Errorf("sender's name of %d bytes, %d left in the message", l, len(rest))
	}
	return rest[:l], rest[l:], nil
}

// checkFrames checks the frames of a batch body and returns their number:
// at least one, each within the body and of at most MaxMessageSize bytes.
func checkFrames(body []byte) (int, error) {
	count := 0
	for len(body) > 0 {
		l, k := binary.Uvarint(body)
		if k <= 0 {
			return 0, fmt.Errorf("message %d truncated in its length", count)
		}
		if l > MaxMessageSize {
			return 0, fmt.Errorf("message %d of %d bytes, at most %d", count, l, MaxMessageSize)
		}
		if l > uint64(len(body)-k) {
			return 0, fmt.Errorf("message %d of %d bytes, %d left in the batch", count, l, len(body)-k)
		}
		body = body[k+int(l):]
		count++
	}
	if count == 0 {
		return 0, errors.New("batch holds no message")
	}
	return count, nil
}

// nextFrame returns the first message of frames checked by checkFrames, and
// the frames after it.
func nextFrame(frames []byte) (msg, rest []byte) {
	l, k := binary.Uvarint(frames)
	end := k + int(l)
	return frames[k:end:end], frames[end:]
}

// decodeBatch parses a whole batch user message: its sender's name, its
// frames (checked) and their number.
func decodeBatch(b []byte) (name, frames []byte, count int, err error) {
	if len(b) == 0 || b[0] != msgBatch {
		return nil, nil, 0, errors.New("not a batch")
	}
	if len(b) > maxBatch {
		return nil, nil, 0, fmt.Errorf("batch of %d bytes, at most %d", len(b), maxBatch)
	}
	name, frames, err = splitHeader(b)
	if err != nil {
		return nil, nil, 0, err
	}
	count, err = checkFrames(frames)
	if err != nil {
		return nil, nil, 0, err
	}
	return name, frames, count, nil
}
