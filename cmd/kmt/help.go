package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// Flag categories in --help, in the order a newcomer needs them: the
// command's own flags (no heading), then what traffic to run, then where the
// results go, then the Kubernetes target's flags and any others.
const (
	catWorkload   = "workload"
	catOutput     = "output"
	catKubernetes = "Kubernetes target (--target kubernetes)"
	catRealKafka  = "real Kafka (--kafka-home, --target processes)"
)

// inCategory sets the help category of every flag and returns them.
func inCategory(category string, flags ...cli.Flag) []cli.Flag {
	for _, f := range flags {
		switch f := f.(type) {
		case *cli.StringFlag:
			f.Category = category
		case *cli.StringSliceFlag:
			f.Category = category
		case *cli.IntFlag:
			f.Category = category
		case *cli.Int64Flag:
			f.Category = category
		case *cli.Uint64Flag:
			f.Category = category
		case *cli.Float64Flag:
			f.Category = category
		case *cli.BoolFlag:
			f.Category = category
		case *cli.DurationFlag:
			f.Category = category
		case *cli.PathFlag:
			f.Category = category
		case *cli.GenericFlag:
			f.Category = category
		}
	}
	return flags
}

// orderedHelpTemplate is urfave/cli's command help with the OPTIONS section
// in newcomer order (uncategorized, workload, output, then the rest sorted)
// instead of alphabetical category order.
var orderedHelpTemplate = func() string {
	block := `
   {{if .Name}}{{.Name}}

   {{end}}{{$flglen := len .Flags}}{{range $i, $e := .Flags}}{{if eq (subtract $flglen $i) 1}}{{$e}}
{{else}}{{$e}}
   {{end}}{{end}}`
	each := func(cond string) string {
		return `{{range .VisibleFlagCategories}}{{if ` + cond + `}}` + block + `{{end}}{{end}}`
	}
	options := "OPTIONS:" +
		each(`not .Name`) +
		each(`eq .Name "`+catWorkload+`"`) +
		each(`eq .Name "`+catOutput+`"`) +
		each(`eq .Name "`+catKubernetes+`"`) +
		each(`and .Name (ne .Name "`+catWorkload+`") (ne .Name "`+catOutput+`") (ne .Name "`+catKubernetes+`")`)
	t := cli.CommandHelpTemplate
	start := strings.Index(t, "OPTIONS:")
	end := strings.Index(t[start:], "{{end}}")
	if start < 0 || end < 0 {
		return t // an unexpected template: keep urfave's order
	}
	return t[:start] + options + t[start+end:]
}()
