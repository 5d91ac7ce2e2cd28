package coordinator

import (
	"strconv"
	"strings"
)

// keys spells Herald's etcd key layout under one prefix. docs/ETCD.md is
// the reference; this is the only place that builds or parses keys.
//
//	P/archive/<id>
//	P/assigned/<member>/<id>/<slot>
//	P/broadcasts/<id>/spec
//	P/broadcasts/<id>/state
//	P/members/<member>
//	P/progress/<id>/<slot>
//	P/slots/<id>/claim/<slot>
//	P/slots/<id>/done/<slot>
//
// What a member watches is chosen by who needs what, since every key a
// member watches costs it an event at every change, and the fleet
// members × changes:
//
//   - Every member watches [viewStart, viewEnd): the broadcasts' specs and
//     states, and the members. They change when a broadcast is registered,
//     starts, pauses or ends, and when a member joins or leaves.
//   - Every member watches its own assignments, P/assigned/<member>/: a
//     note written with each claim the member holds (and rewritten when
//     the slot is asked back), so it learns of its claims without seeing
//     anyone else's.
//   - A broadcast's leader, the one member that decides who holds what,
//     watches its claims and done markers, P/slots/<id>/.
//   - Nobody watches a slot's progress (the checkpoints, most of the
//     writes), nor the archive.
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
func (k keys) allSlots() string           { return k.prefix + "/slots/" }
func (k keys) slots(id string) string     { return k.allSlots() + id + "/" }
func (k keys) claims(id string) string    { return k.slots(id) + "claim/" }
func (k keys) claim(id string, s int) string {
	return k.claims(id) + strconv.Itoa(s)
}
func (k keys) dones(id string) string { return k.slots(id) + "done/" }
func (k keys) done(id string, s int) string {
	return k.dones(id) + strconv.Itoa(s)
}
func (k keys) notes(member string) string { return k.prefix + "/assigned/" + member + "/" }
func (k keys) note(member, id string, s int) string {
	return k.notes(member) + id + "/" + strconv.Itoa(s)
}
func (k keys) progresses(id string) string { return k.prefix + "/progress/" + id + "/" }
func (k keys) progress(id string, s int) string {
	return k.progresses(id) + strconv.Itoa(s)
}
func (k keys) archives() string         { return k.prefix + "/archive/" }
func (k keys) archive(id string) string { return k.archives() + id }

// viewStart and viewEnd bound the keys every member reads and watches:
// the broadcasts, then the members ("members0" is the first key after
// every "members/..."). The archive and the assignments sort before it,
// progress and slots after.
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
	keyNote
)

// parse classifies key. For a member key, name is the member id; for the
// other kinds, broadcast is the broadcast id and, for claims, done markers,
// notes and progress, slot is the slot number (-1 otherwise); for a note,
// name is the member it is for.
func (k keys) parse(key string) (kind keyKind, broadcast, name string, slot int) {
	rest, ok := strings.CutPrefix(key, k.root())
	if !ok {
		return keyOther, "", "", -1
	}
	folder, rest, _ := strings.Cut(rest, "/")
	switch folder {
	case "members":
		if rest != "" && !strings.Contains(rest, "/") {
			return keyMember, "", rest, -1
		}
	case "progress":
		b, s, ok := strings.Cut(rest, "/")
		if n, valid := slotNumber(s); ok && b != "" && valid {
			return keyProgress, b, "", n
		}
	case "assigned":
		m, rest, ok := strings.Cut(rest, "/")
		if !ok || m == "" {
			break
		}
		b, s, ok := strings.Cut(rest, "/")
		if n, valid := slotNumber(s); ok && b != "" && valid {
			return keyNote, b, m, n
		}
	case "slots":
		b, rest, ok := strings.Cut(rest, "/")
		if !ok || b == "" {
			break
		}
		what, s, ok := strings.Cut(rest, "/")
		n, valid := slotNumber(s)
		if !ok || !valid {
			break
		}
		switch what {
		case "claim":
			return keyClaim, b, "", n
		case "done":
			return keyDone, b, "", n
		}
	case "broadcasts":
		b, rest, ok := strings.Cut(rest, "/")
		if !ok || b == "" {
			break
		}
		switch rest {
		case "spec":
			return keySpec, b, "", -1
		case "state":
			return keyState, b, "", -1
		}
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
