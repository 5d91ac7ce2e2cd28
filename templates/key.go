package templates

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
)

// KeyPrefix starts every idempotency key. It names the key's scheme, so a
// future scheme can be told apart, and it must never change for this one.
const KeyPrefix = "hk1-"

// Key returns the idempotency key a delivery carries for a subscriber of a
// broadcast: "hk1-" and 32 lowercase hex digits, the first 16 bytes of
// SHA-256 over the two ids, each preceded by its length as 8 big-endian
// bytes. The length prefixes make the hashed input differ for any other
// pair ("a","bc" and "ab","c" hash different bytes); 128 bits make a
// collision between different pairs practically impossible. The key is 36
// printable ASCII characters, the same in every attempt, process and
// version.
func Key(broadcastID, subscriberID string) string {
	var buf [len(KeyPrefix) + 2*keyBytes]byte
	return string(AppendKey(buf[:0], broadcastID, subscriberID))
}

const keyBytes = 16

// AppendKey appends Key(broadcastID, subscriberID) to dst. It allocates
// nothing for ids within the longest Herald allows (a broadcast id of 128
// bytes, a subscriber id of 256), only to grow dst.
func AppendKey(dst []byte, broadcastID, subscriberID string) []byte {
	var scratch [8 + 128 + 8 + 256]byte
	in := scratch[:0]
	in = binary.BigEndian.AppendUint64(in, uint64(len(broadcastID)))
	in = append(in, broadcastID...)
	in = binary.BigEndian.AppendUint64(in, uint64(len(subscriberID)))
	in = append(in, subscriberID...)
	sum := sha256.Sum256(in)
	dst = append(dst, KeyPrefix...)
	return hex.AppendEncode(dst, sum[:keyBytes])
}
