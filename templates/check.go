package templates

import (
	"fmt"
	"slices"
	"strconv"
	"text/template/parse"
)

// checker walks a freshly parsed tree once. It refuses what a template may
// not do (other templates, nested loops, functions outside the vetted set)
// and rewrites what text/template would get wrong for us:
//   - every attribute reference .a.b, $x.a and (pipe).a becomes a call that
//     names the attribute when it is missing, or, as an argument of default,
//     one that yields nil so that default can apply;
//   - {{.}} outside with and range, and {{$}}, which would be the
//     renderState the template runs on, become the record;
//   - the functions whose work grows with their input get $ as a hidden
//     first argument, to charge the message's budget (budget.go);
//   - an action that could print a nil gets a guard, so "<no value>" never
//     reaches a subscriber;
//   - every range charges its items times the size of its body.
type checker struct {
	inRange bool
	// rootDot says dot is the template's data: outside with and range.
	rootDot bool
}

// checkError is a refusal at a position of the template's text.
type checkError struct {
	pos parse.Pos
	msg string
	// action says the refusal is of a whole action, whose node points
	// inside it: the error should point at its opening "{{".
	action bool
}

func (e *checkError) Error() string { return e.msg }

func refuse(pos parse.Pos, format string, args ...any) error {
	return &checkError{pos: pos, msg: fmt.Sprintf(format, args...)}
}

func checkTree(root *parse.ListNode) error {
	c := &checker{rootDot: true}
	return c.list(root)
}

func (c *checker) list(l *parse.ListNode) error {
	if l == nil {
		return nil
	}
	for _, n := range l.Nodes {
		if err := c.node(n); err != nil {
			return err
		}
	}
	return nil
}

func (c *checker) node(n parse.Node) error {
	switch n := n.(type) {
	case *parse.TextNode, *parse.CommentNode, *parse.BreakNode, *parse.ContinueNode:
		return nil
	case *parse.ActionNode:
		guard := len(n.Pipe.Decl) == 0 && mayBeNil(n.Pipe)
		if err := c.pipe(n.Pipe, false); err != nil {
			return err
		}
		if guard {
			n.Pipe.Cmds = append(n.Pipe.Cmds, command(n.Pos, identifier(fnPrint, n.Pos)))
		}
		return nil
	case *parse.IfNode:
		return c.branch(&n.BranchNode, c.rootDot)
	case *parse.WithNode:
		return c.branch(&n.BranchNode, false)
	case *parse.RangeNode:
		if c.inRange {
			return &checkError{pos: n.Pos, msg: "range inside range is not allowed", action: true}
		}
		if err := c.pipe(n.Pipe, false); err != nil {
			return err
		}
		cost := 1 + size(n.List)
		n.Pipe.Cmds = append(n.Pipe.Cmds, command(n.Pos, identifier(fnRange, n.Pos), dollar(n.Pos), integer(cost, n.Pos)))
		c.inRange = true
		err := c.body(n.List, false)
		c.inRange = false
		if err != nil {
			return err
		}
		return c.list(n.ElseList)
	case *parse.TemplateNode:
		return &checkError{pos: n.Pos, msg: "{{template}} and {{block}} are not allowed: each field is one template", action: true}
	}
	return &checkError{pos: n.Position(), msg: fmt.Sprintf("unsupported action %s", n), action: true}
}

// branch checks an if or a with; rootDot is what dot is in its body.
func (c *checker) branch(b *parse.BranchNode, rootDot bool) error {
	if err := c.pipe(b.Pipe, false); err != nil {
		return err
	}
	if err := c.body(b.List, rootDot); err != nil {
		return err
	}
	return c.list(b.ElseList)
}

func (c *checker) body(l *parse.ListNode, rootDot bool) error {
	outer := c.rootDot
	c.rootDot = rootDot
	err := c.list(l)
	c.rootDot = outer
	return err
}

// pipe checks a pipeline; optional says its value is an argument of
// default, so a missing attribute at its end is not an error.
func (c *checker) pipe(p *parse.PipeNode, optional bool) error {
	for _, v := range p.Decl {
		if v.Ident[0] == "$" {
			return refuse(v.Pos, "$ cannot be assigned")
		}
	}
	for i, cmd := range p.Cmds {
		last := i == len(p.Cmds)-1
		opt := (last && optional) || (!last && isCall(p.Cmds[i+1], "default"))
		if err := c.command(cmd, i > 0, opt); err != nil {
			return err
		}
	}
	return nil
}

func (c *checker) command(cmd *parse.CommandNode, piped, optional bool) error {
	fn, ok := cmd.Args[0].(*parse.IdentifierNode)
	if !ok {
		switch {
		case piped:
			return refuse(cmd.Args[0].Position(), "cannot pipe into %s: it is not a function", cmd.Args[0])
		case len(cmd.Args) > 1:
			return refuse(cmd.Args[0].Position(), "%s is not a function: it takes no arguments", cmd.Args[0])
		}
		a, err := c.arg(cmd.Args[0], optional)
		cmd.Args[0] = a
		return err
	}
	n := len(cmd.Args) - 1
	if piped {
		n++
	}
	if err := checkCall(fn, n); err != nil {
		return err
	}
	// default's arguments, and index's under default, may be missing.
	optArgs := fn.Ident == "default" || (fn.Ident == "index" && optional)
	if fn.Ident == "index" && optional {
		fn.Ident = fnOptIndex
	}
	for j := 1; j < len(cmd.Args); j++ {
		a, err := c.arg(cmd.Args[j], optArgs)
		if err != nil {
			return err
		}
		cmd.Args[j] = a
	}
	if chargedFunc(fn.Ident) {
		cmd.Args = slices.Insert(cmd.Args, 1, parse.Node(dollar(fn.Pos)))
	}
	return nil
}

func checkCall(fn *parse.IdentifierNode, n int) error {
	lo, hi, ok := userFunc(fn.Ident)
	switch {
	case !ok:
		return refuse(fn.Pos, "function %q is not allowed", fn.Ident)
	case n < lo || (hi >= 0 && n > hi):
		want := strconv.Itoa(lo)
		switch {
		case hi < 0:
			want = "at least " + want
		case hi != lo:
			want += " to " + strconv.Itoa(hi)
		}
		noun := "arguments"
		if hi == 1 {
			noun = "argument"
		}
		return refuse(fn.Pos, "%s takes %s %s, got %d", fn.Ident, want, noun, n)
	}
	return nil
}

// arg checks one operand and returns what replaces it.
func (c *checker) arg(n parse.Node, optional bool) (parse.Node, error) {
	switch a := n.(type) {
	case *parse.FieldNode:
		return lookupCall(&parse.DotNode{NodeType: parse.NodeDot, Pos: a.Pos}, a.Ident, optional, a.Pos), nil
	case *parse.DotNode:
		if c.rootDot {
			return call(a.Pos, fnRoot, a), nil
		}
		return a, nil
	case *parse.VariableNode:
		if len(a.Ident) == 1 {
			if a.Ident[0] == "$" {
				return call(a.Pos, fnRoot, a), nil
			}
			return a, nil
		}
		v := &parse.VariableNode{NodeType: parse.NodeVariable, Pos: a.Pos, Ident: a.Ident[:1]}
		return lookupCall(v, a.Ident[1:], optional, a.Pos), nil
	case *parse.ChainNode:
		inner, err := c.arg(a.Node, false)
		if err != nil {
			return nil, err
		}
		return lookupCall(inner, a.Field, optional, a.Pos), nil
	case *parse.PipeNode:
		return a, c.pipe(a, optional)
	case *parse.IdentifierNode:
		// A function without arguments, as an operand.
		if err := checkCall(a, 0); err != nil {
			return nil, err
		}
		if chargedFunc(a.Ident) {
			return call(a.Pos, a.Ident, dollar(a.Pos)), nil
		}
		return a, nil
	}
	return n, nil
}

// mayBeNil says whether the value of an action's pipeline could be nil,
// judged before rewriting. Attribute references cannot (a missing one is an
// error), nor can the functions that return text or booleans.
func mayBeNil(p *parse.PipeNode) bool {
	switch a := p.Cmds[len(p.Cmds)-1].Args[0].(type) {
	case *parse.FieldNode, *parse.ChainNode, *parse.StringNode, *parse.NumberNode, *parse.BoolNode:
		return false
	case *parse.VariableNode:
		return len(a.Ident) == 1
	case *parse.IdentifierNode:
		switch a.Ident {
		case "default", "and", "or", "slice":
			return true
		}
		return false
	}
	return true
}

func isCall(cmd *parse.CommandNode, name string) bool {
	fn, ok := cmd.Args[0].(*parse.IdentifierNode)
	return ok && fn.Ident == name
}

// size counts the nodes of a list, as a measure of the work of running it.
func size(l *parse.ListNode) int {
	if l == nil {
		return 0
	}
	n := 0
	for _, node := range l.Nodes {
		n++
		switch node := node.(type) {
		case *parse.ActionNode:
			n += len(node.Pipe.Cmds)
		case *parse.IfNode:
			n += len(node.Pipe.Cmds) + size(node.List) + size(node.ElseList)
		case *parse.WithNode:
			n += len(node.Pipe.Cmds) + size(node.List) + size(node.ElseList)
		}
	}
	return n
}

// Nodes built by the checker carry the position of the node they stand
// for, so text/template's error context still points into the field's text.

func lookupCall(subject parse.Node, path []string, optional bool, pos parse.Pos) *parse.PipeNode {
	name := fnAttr
	switch {
	case optional && len(path) == 1:
		name = fnOptAttr1
	case optional:
		name = fnOptAttr
	case len(path) == 1:
		name = fnAttr1
	}
	args := []parse.Node{subject}
	for _, p := range path {
		args = append(args, &parse.StringNode{NodeType: parse.NodeString, Pos: pos, Quoted: strconv.Quote(p), Text: p})
	}
	return call(pos, name, args...)
}

// call is the parenthesised pipeline (fn args...).
func call(pos parse.Pos, fn string, args ...parse.Node) *parse.PipeNode {
	args = append([]parse.Node{identifier(fn, pos)}, args...)
	return &parse.PipeNode{NodeType: parse.NodePipe, Pos: pos, Cmds: []*parse.CommandNode{command(pos, args...)}}
}

func command(pos parse.Pos, args ...parse.Node) *parse.CommandNode {
	return &parse.CommandNode{NodeType: parse.NodeCommand, Pos: pos, Args: args}
}

func identifier(name string, pos parse.Pos) *parse.IdentifierNode {
	return parse.NewIdentifier(name).SetPos(pos)
}

func integer(v int, pos parse.Pos) *parse.NumberNode {
	return &parse.NumberNode{
		NodeType: parse.NodeNumber, Pos: pos,
		IsInt: true, IsUint: true, IsFloat: true,
		Int64: int64(v), Uint64: uint64(v), Float64: float64(v),
		Text: strconv.Itoa(v),
	}
}
