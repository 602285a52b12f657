package certportal

import (
	"cmp"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"time"
)

// AuditCheckpoint is a signed statement that the audit log's record Seq
// had hash Hash at Time: signed with the installation's Ed25519 audit key
// (DATA/ca/audit.key), kept in the database and appended to
// DATA/audit-checkpoints.log, of which copies can be kept elsewhere. A
// log that was edited, truncated or recomputed after a checkpoint no
// longer matches it.
type AuditCheckpoint struct {
	Seq       int64
	Hash      string // hex SHA-256 of record Seq
	Time      time.Time
	PublicKey ed25519.PublicKey
	Signature []byte
}

// checkpointLabel starts every checkpoint line and the signed message.
const checkpointLabel = "certportal-audit-checkpoint-v1"

// message is what the signature covers.
func (c *AuditCheckpoint) message() []byte {
	return []byte(checkpointLabel + "\n" + strconv.FormatInt(c.Seq, 10) + "\n" + c.Hash + "\n" +
		c.Time.UTC().Format(time.RFC3339Nano) + "\n")
}

// SignCheckpoint makes the checkpoint of record seq with hash at t.
func SignCheckpoint(key ed25519.PrivateKey, seq int64, hash string, t time.Time) *AuditCheckpoint {
	c := &AuditCheckpoint{Seq: seq, Hash: hash, Time: t.UTC(), PublicKey: key.Public().(ed25519.PublicKey)}
	c.Signature = ed25519.Sign(key, c.message())
	return c
}

// Verify reports whether the signature is valid for the checkpoint's own
// public key; the caller also checks that key is the installation's.
func (c *AuditCheckpoint) Verify() bool {
	return len(c.PublicKey) == ed25519.PublicKeySize && ed25519.Verify(c.PublicKey, c.message(), c.Signature)
}

// String is the checkpoint's line in DATA/audit-checkpoints.log:
//
//	certportal-audit-checkpoint-v1 SEQ HASH TIME KEY SIGNATURE
//
// SEQ decimal, HASH 64 lower-case hex digits, TIME RFC 3339 in UTC, KEY
// and SIGNATURE standard base64 (the 32-byte public key, the 64-byte
// signature), separated by single spaces.
func (c *AuditCheckpoint) String() string {
	return strings.Join([]string{checkpointLabel, strconv.FormatInt(c.Seq, 10), c.Hash,
		c.Time.UTC().Format(time.RFC3339Nano), base64.StdEncoding.EncodeToString(c.PublicKey),
		base64.StdEncoding.EncodeToString(c.Signature)}, " ")
}

// ParseCheckpoint parses one line that String wrote, strictly: anything
// else is Invalid. The signature is not checked here (Verify does).
func ParseCheckpoint(line string) (*AuditCheckpoint, error) {
	bad := func(why string) error { return Errorf(Invalid, "not an audit checkpoint line: %s", why) }
	f := strings.Split(line, " ")
	if len(f) != 6 || f[0] != checkpointLabel {
		return nil, bad("it does not have the six fields of " + checkpointLabel)
	}
	seq, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil || seq < 1 || strconv.FormatInt(seq, 10) != f[1] {
		return nil, bad("the sequence number is malformed")
	}
	if h, err := hex.DecodeString(f[2]); err != nil || len(h) != 32 || hex.EncodeToString(h) != f[2] {
		return nil, bad("the hash is not 64 lower-case hex digits")
	}
	t, err := time.Parse(time.RFC3339Nano, f[3])
	if err != nil || t.Location() != time.UTC || t.Format(time.RFC3339Nano) != f[3] {
		return nil, bad("the time is not RFC 3339 in UTC")
	}
	pub, err := base64.StdEncoding.Strict().DecodeString(f[4])
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return nil, bad("the public key is malformed")
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(f[5])
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, bad("the signature is malformed")
	}
	return &AuditCheckpoint{Seq: seq, Hash: f[2], Time: t, PublicKey: pub, Signature: sig}, nil
}

// CheckpointFromColumns parses a checkpoint as a database stores it (the
// fields of its line), as strictly as ParseCheckpoint.
func CheckpointFromColumns(seq int64, hash, at, publicKey, signature string) (*AuditCheckpoint, error) {
	return ParseCheckpoint(strings.Join([]string{checkpointLabel, strconv.FormatInt(seq, 10), hash, at, publicKey, signature}, " "))
}

// VerifyAudit checks the whole audit log: events (every record, in
// sequence order) form an unbroken chain, records from v2From on carry
// the stronger hash (and none before it), and every checkpoint is signed
// by pub and matches the record it names. It returns the first bad
// sequence number and why, or 0 and nil. A chain that ends before a
// checkpoint was truncated; a checkpoint whose hash differs shows that a
// record up to it was changed or the chain recomputed since.
func VerifyAudit(events []AuditEvent, v2From int64, checkpoints []AuditCheckpoint, pub ed25519.PublicKey) (int64, error) {
	if bad, err := VerifyAuditChain(events); err != nil {
		return bad, err
	}
	for i := range events {
		e := &events[i]
		if want := 1 + boolInt(e.Seq >= v2From); e.HashVersion != 0 && e.HashVersion != want {
			return e.Seq, Errorf(Conflict, "audit record %d has been altered: it carries hash version %d, where version %d applies", e.Seq, e.HashVersion, want)
		}
	}
	last := int64(len(events))
	matched := int64(0)
	for _, c := range sortedCheckpoints(checkpoints) {
		switch {
		case !c.Verify() || !c.PublicKey.Equal(pub):
			return c.Seq, Errorf(Conflict, "the audit checkpoint at record %d is not signed by this installation's audit key", c.Seq)
		case c.Seq > last:
			return last + 1, Errorf(Conflict, "the audit log ends at record %d, before the signed checkpoint at record %d: records %d to %d were removed", last, c.Seq, last+1, c.Seq)
		case events[c.Seq-1].Hash != c.Hash:
			return matched + 1, Errorf(Conflict, "audit record %d does not match its signed checkpoint: a record from %d to %d was changed, or the chain recomputed", c.Seq, matched+1, c.Seq)
		}
		matched = c.Seq
	}
	return 0, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// sortedCheckpoints orders checkpoints by sequence number.
func sortedCheckpoints(cps []AuditCheckpoint) []AuditCheckpoint {
	out := slices.Clone(cps)
	slices.SortStableFunc(out, func(a, b AuditCheckpoint) int { return cmp.Compare(a.Seq, b.Seq) })
	return out
}
