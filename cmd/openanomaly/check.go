package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	commoncfg "github.com/prometheus/common/config"

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
		// Files the HTTP clients read (as promtool checks them): a missing
		// CA file stops `run`, a missing password file fails every request.
		if errs := checkHTTPFiles(cfg); len(errs) > 0 {
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
	// Overlapping shell globs name a file twice; it is one file, not a
	// duplicate of itself.
	seenFile := map[string]bool{}
	files = slices.DeleteFunc(slices.Clone(files), func(f string) bool {
		abs, err := filepath.Abs(f)
		if err != nil {
			abs = f
		}
		dup := seenFile[abs]
		seenFile[abs] = true
		return dup
	})
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

// checkHTTPFiles reports the files named in the datasource's and the
// remote-write endpoints' HTTP client settings that cannot be read.
func checkHTTPFiles(cfg *config.Config) []error {
	var errs []error
	check := func(where string, hc commoncfg.HTTPClientConfig) {
		files := []struct{ key, path string }{
			{"tls_config.ca_file", hc.TLSConfig.CAFile},
			{"tls_config.cert_file", hc.TLSConfig.CertFile},
			{"tls_config.key_file", hc.TLSConfig.KeyFile},
			{"bearer_token_file", hc.BearerTokenFile},
		}
		if hc.BasicAuth != nil {
			files = append(files, struct{ key, path string }{"basic_auth.password_file", hc.BasicAuth.PasswordFile})
		}
		if hc.Authorization != nil {
			files = append(files, struct{ key, path string }{"authorization.credentials_file", hc.Authorization.CredentialsFile})
		}
		if hc.OAuth2 != nil {
			files = append(files, struct{ key, path string }{"oauth2.client_secret_file", hc.OAuth2.ClientSecretFile})
		}
		for _, f := range files {
			if f.path == "" {
				continue
			}
			if _, err := os.Stat(f.path); err != nil {
				errs = append(errs, fmt.Errorf("%s: %s: %w", where, f.key, err))
			}
		}
	}
	check("datasource", cfg.Datasource.HTTPClientConfig)
	for i, rw := range cfg.RemoteWrite {
		check(fmt.Sprintf("remote_write[%d] (%s)", i, rw.Name), rw.HTTPClientConfig)
	}
	return errs
}
