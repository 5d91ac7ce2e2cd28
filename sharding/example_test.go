package sharding_test

import (
	"fmt"

	"github.com/herald-dev/herald/sharding"
)

// A ring divides the hash space among the fleet; each subscriber belongs to
// the member that owns its position.
func ExampleRing() {
	ring, err := sharding.NewRing([]sharding.Member{
		{ID: "worker-a"},
		{ID: "worker-b"},
		{ID: "worker-c", Weight: 2}, // twice the capacity, about twice the share
	})
	if err != nil {
		panic(err)
	}
	for _, sub := range []string{"alice", "bob", "carol"} {
		fmt.Printf("%s -> %s\n", sub, ring.Owner(sharding.Position(sub)))
	}
	for _, m := range ring.Members() {
		fmt.Printf("%s holds %.2f of the space\n", m, ring.Arcs(m).Share())
	}
	// Output:
	// alice -> worker-b
	// bob -> worker-c
	// carol -> worker-a
	// worker-a holds 0.25 of the space
	// worker-b holds 0.25 of the space
	// worker-c holds 0.50 of the space
}

// When a worker dies, every survivor splits its unit the same way and takes
// the child Pick gives it, with no leader to hand out the pieces.
func ExampleUnit_Split() {
	orphan := sharding.Unit{ID: "u2", Arcs: sharding.Full(), Cursor: sharding.Cursor{Seq: 1500, Offset: 98304}}
	survivors := []string{"worker-c", "worker-a", "worker-d"}

	children := orphan.Split(len(survivors))
	for _, self := range survivors {
		i, _ := sharding.Pick(survivors, self)
		c := children[i]
		fmt.Printf("%s takes %s: %.3f of the space from %v\n", self, c.ID, c.Arcs.Share(), c.Cursor)
	}
	// Output:
	// worker-c takes u2.1: 0.333 of the space from 1500@98304
	// worker-a takes u2.0: 0.333 of the space from 1500@98304
	// worker-d takes u2.2: 0.333 of the space from 1500@98304
}

// When a worker joins, each holder carves the joiner's part out of its unit
// and keeps the rest.
func ExampleJoinMoves() {
	before, _ := sharding.NewRing([]sharding.Member{{ID: "worker-a"}, {ID: "worker-b"}})
	after, _ := sharding.NewRing([]sharding.Member{{ID: "worker-a"}, {ID: "worker-b"}, {ID: "worker-c"}})
	held := sharding.Unit{ID: "u0", Arcs: before.Arcs("worker-a")}

	moves := sharding.JoinMoves(before, after, held.Arcs)
	children := held.Carve(moves["worker-c"])
	fmt.Printf("worker-a keeps %s, %.2f of the space\n", children[0].ID, children[0].Arcs.Share())
	fmt.Printf("worker-c takes %s, %.2f of the space\n", children[1].ID, children[1].Arcs.Share())
	// Output:
	// worker-a keeps u0.0, 0.33 of the space
	// worker-c takes u0.1, 0.17 of the space
}
