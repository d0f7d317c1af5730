package testutil

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// DuplicateKeys returns the keys that appear twice in one object of the
// JSON value b (encoding/json keeps the last silently; strict readers such
// as Elasticsearch refuse the document), or an error if b is not JSON.
func DuplicateKeys(b []byte) ([]string, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	type frame struct {
		object bool
		seen   map[string]bool
		key    bool // the next string token is a key
	}
	var stack []*frame
	var dups []string
	for {
		tok, err := d.Token()
		if err != nil {
			if len(stack) == 0 && err.Error() == "EOF" {
				return dups, nil
			}
			return dups, fmt.Errorf("not JSON: %w", err)
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				if top != nil && top.object {
					top.key = true
				}
				stack = append(stack, &frame{object: true, seen: map[string]bool{}, key: true})
			case '[':
				if top != nil && top.object {
					top.key = true
				}
				stack = append(stack, &frame{})
			default:
				stack = stack[:len(stack)-1]
			}
			continue
		case string:
			if top != nil && top.object && top.key {
				if top.seen[t] {
					dups = append(dups, t)
				}
				top.seen[t] = true
				top.key = false
				continue
			}
		}
		if top != nil && top.object {
			top.key = true
		}
	}
}
