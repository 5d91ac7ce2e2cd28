package coordinator

import "strings"

// keys spells Herald's etcd key layout under one prefix. docs/ETCD.md is
// the reference; this is the only place that builds or parses keys.
//
//	P/archive/<id>
//	P/broadcasts/<id>/spec
//	P/broadcasts/<id>/state
//	P/broadcasts/<id>/units/<unit>
//	P/broadcasts/<id>/arcs/<unit>
//	P/broadcasts/<id>/claims/<unit>
//	P/members/<member>
//
// A member's view covers [viewStart, viewEnd): the broadcasts and the
// members, and not the archive, which sorts before both, so the records of
// finished broadcasts are never read by a resync nor sent to a watch.
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
func (k keys) units(id string) string     { return k.broadcast(id) + "units/" }
func (k keys) unit(id, u string) string   { return k.units(id) + u }
func (k keys) claims(id string) string    { return k.broadcast(id) + "claims/" }
func (k keys) claim(id, u string) string  { return k.claims(id) + u }
func (k keys) arcs(id, u string) string   { return k.broadcast(id) + "arcs/" + u }
func (k keys) archives() string           { return k.prefix + "/archive/" }
func (k keys) archive(id string) string   { return k.archives() + id }

// viewStart and viewEnd bound the keys a member reads and watches: every
// key under the prefix from "broadcasts/" on. viewEnd is the end of the
// whole prefix (its '/' incremented), so members/ is in and archive/,
// which sorts before broadcasts/, is out.
func (k keys) viewStart() string { return k.broadcasts() }
func (k keys) viewEnd() string   { return k.prefix + "0" }

// archivesEnd is the end of the archive prefix's range.
func (k keys) archivesEnd() string { return k.prefix + "/archive0" }

// keyKind says what a key under the prefix is.
type keyKind int

const (
	keyOther keyKind = iota
	keyMember
	keySpec
	keyState
	keyUnit
	keyArcs
	keyClaim
)

// parse classifies key. For a member key, name is the member id; for the
// broadcast keys, broadcast is the broadcast id and name the unit id (for
// units, arcs and claims).
func (k keys) parse(key string) (kind keyKind, broadcast, name string) {
	rest, ok := strings.CutPrefix(key, k.root())
	if !ok {
		return keyOther, "", ""
	}
	if id, ok := strings.CutPrefix(rest, "members/"); ok && id != "" && !strings.Contains(id, "/") {
		return keyMember, "", id
	}
	rest, ok = strings.CutPrefix(rest, "broadcasts/")
	if !ok {
		return keyOther, "", ""
	}
	b, rest, ok := strings.Cut(rest, "/")
	if !ok || b == "" {
		return keyOther, "", ""
	}
	switch {
	case rest == "spec":
		return keySpec, b, ""
	case rest == "state":
		return keyState, b, ""
	}
	folder, u, ok := strings.Cut(rest, "/")
	if !ok || u == "" || strings.Contains(u, "/") {
		return keyOther, "", ""
	}
	switch folder {
	case "units":
		return keyUnit, b, u
	case "arcs":
		return keyArcs, b, u
	case "claims":
		return keyClaim, b, u
	}
	return keyOther, "", ""
}
