package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/openanomaly/openanomaly/pkg/config"
	"github.com/openanomaly/openanomaly/pkg/rulefmt"
)

// checkConfig checks config files and every rule file each one names,
// including that every rule's model is defined and that forecast names are
// unique across the rule files. It prints promtool-like results to w and
// returns the exit code: 0 when everything is valid, 1 otherwise.
func checkConfig(w io.Writer, files ...string) int {
	code := 0
	for _, file := range files {
		fmt.Fprintf(w, "Checking %s\n", file)
		cfg, errs := config.LoadFile(file)
		if len(errs) > 0 {
			printFailed(w, errs)
			code = 1
			continue
		}
		paths, err := cfg.RuleFilePaths()
		if err != nil {
			printFailed(w, []error{err})
			code = 1
			continue
		}
		fmt.Fprintf(w, "  SUCCESS: %s found\n", plural(len(paths), "rule file"))

		// Parse every file first: the cross checks need them all.
		parsed := make([]*rulefmt.RuleGroups, len(paths))
		fileErrs := make(map[string][]error, len(paths))
		for i, p := range paths {
			parsed[i], fileErrs[p] = rulefmt.ParseFile(p)
		}
		for _, err := range append(config.CheckModels(cfg, parsed...), rulefmt.CheckUnique(parsed...)...) {
			f := ruleErrorFile(err)
			fileErrs[f] = append(fileErrs[f], err)
		}
		if !printRuleResults(w, paths, parsed, fileErrs) {
			code = 1
		}
	}
	return code
}

// checkRules checks rule files on their own (models cannot be checked
// without a config) and that forecast names are unique across them. It
// prints promtool-like results to w and returns the exit code.
func checkRules(w io.Writer, files ...string) int {
	parsed := make([]*rulefmt.RuleGroups, len(files))
	fileErrs := make(map[string][]error, len(files))
	for i, f := range files {
		parsed[i], fileErrs[f] = rulefmt.ParseFile(f)
	}
	for _, err := range rulefmt.CheckUnique(parsed...) {
		f := ruleErrorFile(err)
		fileErrs[f] = append(fileErrs[f], err)
	}
	if !printRuleResults(w, files, parsed, fileErrs) {
		return 1
	}
	return 0
}

// printRuleResults prints one block per rule file and reports whether all
// were valid.
func printRuleResults(w io.Writer, paths []string, parsed []*rulefmt.RuleGroups, fileErrs map[string][]error) bool {
	ok := true
	for i, p := range paths {
		fmt.Fprintf(w, "Checking %s\n", p)
		if errs := fileErrs[p]; len(errs) > 0 {
			printFailed(w, errs)
			ok = false
			continue
		}
		rules := 0
		for _, g := range parsed[i].Groups {
			rules += len(g.Rules)
		}
		fmt.Fprintf(w, "  SUCCESS: %s, %s found\n", plural(len(parsed[i].Groups), "group"), plural(rules, "pipeline"))
	}
	return ok
}

// ruleErrorFile returns the file a rule error is about.
func ruleErrorFile(err error) string {
	var re *rulefmt.Error
	if errors.As(err, &re) {
		return re.File
	}
	return ""
}

func printFailed(w io.Writer, errs []error) {
	fmt.Fprintln(w, "  FAILED:")
	for _, err := range errs {
		fmt.Fprintln(w, err)
	}
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
