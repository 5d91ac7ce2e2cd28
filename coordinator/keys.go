package coordinator

import (
	"strconv"
	"strings"
)

// keys spells Herald's etcd key layout under one prefix. docs/ETCD.md is
// the reference; this is the only place that builds or parses keys.
//
//	P/archive/<id>
//	P/broadcasts/<id>/spec
//	P/broadcasts/<id>/state
//	P/broadcasts/<id>/claims/<slot>
//	P/broadcasts/<id>/done/<slot>
//	P/members/<member>
//	P/progress/<id>/<slot>
//
// A member's view covers [viewStart, viewEnd): the broadcasts and the
// members, and nothing else. The archive sorts before it, so the records
// of finished broadcasts are never read by a resync nor sent to a watch.
// A slot's progress sorts after it on purpose: checkpoints are most of the
// writes, and no member needs to see another's. The claim and the done
// marker of a slot are what the others need, and both change only when a
// slot changes hands or ends.
type keys struct {
	prefix string // no trailing slash
}

func (k keys) root() string               { return k.prefix + "/" }
func (k keys) members() string            { return k.prefix + "/members/" }
func (k keys) member(id string) string    { return k.members() + id }
func (k keys) broadcasts() string         { return k.prefix + "/broadcasts/" }
func (k keys) broadcast(id string) string { return k.broadcasts() + id + "/" }
func (k keys) spec(id string) string      { return k.broadcast(id) + "spec" }
func (k keys) state(id string) string     { return k.broadcast(id) + "state" }
func (k keys) claims(id string) string    { return k.broadcast(id) + "claims/" }
func (k keys) claim(id string, s int) string {
	return k.claims(id) + strconv.Itoa(s)
}
func (k keys) dones(id string) string { return k.broadcast(id) + "done/" }
func (k keys) done(id string, s int) string {
	return k.dones(id) + strconv.Itoa(s)
}
func (k keys) progresses(id string) string { return k.prefix + "/progress/" + id + "/" }
func (k keys) progress(id string, s int) string {
	return k.progresses(id) + strconv.Itoa(s)
}
func (k keys) archives() string         { return k.prefix + "/archive/" }
func (k keys) archive(id string) string { return k.archives() + id }

// viewStart and viewEnd bound the keys a member reads and watches: the
// broadcasts, then the members ("members0" is the first key after every
// "members/..."). The archive and the progress records sort outside it.
func (k keys) viewStart() string { return k.broadcasts() }
func (k keys) viewEnd() string   { return k.prefix + "/members0" }

// archivesEnd is the end of the archive prefix's range.
func (k keys) archivesEnd() string { return k.prefix + "/archive0" }

// keyKind says what a key under the prefix is.
type keyKind int

const (
	keyOther keyKind = iota
	keyMember
	keySpec
	keyState
	keyClaim
	keyDone
	keyProgress
)

// parse classifies key. For a member key, name is the member id; for the
// other kinds, broadcast is the broadcast id and, for claims, done markers
// and progress, slot is the slot number (-1 otherwise).
func (k keys) parse(key string) (kind keyKind, broadcast, name string, slot int) {
	rest, ok := strings.CutPrefix(key, k.root())
	if !ok {
		return keyOther, "", "", -1
	}
	if id, ok := strings.CutPrefix(rest, "members/"); ok && id != "" && !strings.Contains(id, "/") {
		return keyMember, "", id, -1
	}
	if rest, ok := strings.CutPrefix(rest, "progress/"); ok {
		b, s, ok := strings.Cut(rest, "/")
		if n, valid := slotNumber(s); ok && b != "" && valid {
			return keyProgress, b, "", n
		}
		return keyOther, "", "", -1
	}
	rest, ok = strings.CutPrefix(rest, "broadcasts/")
	if !ok {
		return keyOther, "", "", -1
	}
	b, rest, ok := strings.Cut(rest, "/")
	if !ok || b == "" {
		return keyOther, "", "", -1
	}
	switch rest {
	case "spec":
		return keySpec, b, "", -1
	case "state":
		return keyState, b, "", -1
	}
	folder, s, ok := strings.Cut(rest, "/")
	n, valid := slotNumber(s)
	if !ok || !valid {
		return keyOther, "", "", -1
	}
	switch folder {
	case "claims":
		return keyClaim, b, "", n
	case "done":
		return keyDone, b, "", n
	}
	return keyOther, "", "", -1
}

// slotNumber reads a slot number in the form keys writes: decimal, no sign,
// no leading zero.
func slotNumber(s string) (int, bool) {
	if s == "" || len(s) > 9 || (s[0] == '0' && len(s) > 1) {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}
