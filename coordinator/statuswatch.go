package coordinator

// What a status reader watches. A console that shows many broadcasts live
// watches one key range and reads a broadcast's Status again when a key of
// it changed, instead of polling every broadcast: these two tell it which
// range and whose status, so the key layout stays spelled here alone.

// StatusRange is the key range [from, end) whose changes can change a
// live broadcast's Status: the broadcasts' specs and states, the member
// records (their endpoint waits) and the slots' progress records. It leaves
// out the claims, done markers and notes (a slot's claim and its done
// marker are written with a progress record or a state change that is in
// the range) and the archive (archiving deletes the state key, which is).
func (r *Registry) StatusRange() (from, end string) {
	return r.keys.broadcasts(), r.keys.prefix + "/progress0"
}

// StatusOf says whose status a change of key (within StatusRange) may
// have changed: broadcast id, or every broadcast (all) for a member
// record, whose endpoint waits may concern any. Other keys give neither.
func (r *Registry) StatusOf(key string) (id string, all bool) {
	kind, broadcast, _, _ := r.keys.parse(key)
	switch kind {
	case keySpec, keyState, keyProgress:
		return broadcast, false
	case keyMember:
		return "", true
	}
	return "", false
}
