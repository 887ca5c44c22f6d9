package main

import (
	"encoding/json"
	"fmt"
	"io"

	"sigs.k8s.io/yaml"
)

// printData writes v as JSON or YAML (-o json|yaml): the form scripts and
// kubectl users expect from a command whose output is data.
func printData(w io.Writer, format string, v any) error {
	switch format {
	case "json":
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return fmt.Errorf("cannot encode the output as JSON: %w", err)
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	case "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return fmt.Errorf("cannot encode the output as YAML: %w", err)
		}
		_, err = w.Write(b)
		return err
	}
	return usageErrorf("-o %s: want json or yaml", format)
}
