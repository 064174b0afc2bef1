// Command kstatus reads one Kubernetes object as JSON on stdin and prints, as JSON, how GitOps
// tools judge it:
//
//	kstatus                      {"status": "Current", "message": ..., "conditions": [...]}
//	                             from sigs.k8s.io/cli-utils/pkg/kstatus/status.Compute (Flux,
//	                             cli-utils appliers)
//	kstatus argocd-health FILE   {"status": "Healthy", "message": ...} from the Argo CD health
//	                             check FILE, run like Argo CD runs it: gopher-lua (Lua 5.1) with
//	                             the object in the global `obj`
//
// tests/gitops builds it into a cache outside the repository and checks that a PhoenixTwin's
// status follows the conventions these tools rely on.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

func main() {
	raw, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail("read stdin: %v", err)
	}
	// Unstructured's own decoder keeps integers as int64, as the API machinery does
	// (encoding/json would make metadata.generation a float64).
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(raw); err != nil {
		fail("stdin is not a Kubernetes object: %v", err)
	}
	var out map[string]interface{}
	switch {
	case len(os.Args) == 1:
		out = computeKstatus(obj)
	case len(os.Args) == 3 && os.Args[1] == "argocd-health":
		out = argocdHealth(os.Args[2], obj)
	default:
		fail("usage: kstatus [argocd-health FILE] < object.json")
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fail("write: %v", err)
	}
}

func computeKstatus(obj *unstructured.Unstructured) map[string]interface{} {
	result, err := status.Compute(obj)
	if err != nil {
		fail("compute: %v", err)
	}
	return map[string]interface{}{
		"status":     result.Status.String(),
		"message":    result.Message,
		"conditions": result.Conditions,
	}
}

// argocdHealth runs a health.lua the way Argo CD's util/lua does: a fresh gopher-lua state,
// the object converted to nested tables in the global `obj`, the script's returned table read
// back as the health status.
func argocdHealth(path string, obj *unstructured.Unstructured) map[string]interface{} {
	script, err := os.ReadFile(path)
	if err != nil {
		fail("read %s: %v", path, err)
	}
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.StringLibName, lua.OpenString},
		{lua.MathLibName, lua.OpenMath},
	} {
		L.Push(L.NewFunction(lib.open))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
	L.SetGlobal("obj", toLua(L, obj.Object))
	if err := L.DoString(string(script)); err != nil {
		fail("%s: %v", path, err)
	}
	table, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		fail("%s returned %s, not a table", path, L.Get(-1).Type())
	}
	return map[string]interface{}{
		"status":  lua.LVAsString(table.RawGetString("status")),
		"message": lua.LVAsString(table.RawGetString("message")),
	}
}

func toLua(L *lua.LState, value interface{}) lua.LValue {
	switch v := value.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(v)
	case string:
		return lua.LString(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	case map[string]interface{}:
		table := L.NewTable()
		for key, item := range v {
			table.RawSetString(key, toLua(L, item))
		}
		return table
	case []interface{}:
		table := L.NewTable()
		for _, item := range v {
			table.Append(toLua(L, item))
		}
		return table
	default:
		fail("cannot convert %T to Lua", value)
		return lua.LNil
	}
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "kstatus: "+format+"\n", args...)
	os.Exit(2)
}
