package tomcat

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Installed reports, as an error naming what is missing, whether Tomcat 10
// can run here: Debian's tomcat10 (CATALINA_HOME at Home), tomcat10-user
// (tomcat10-instance-create) and a Java runtime.
func Installed() error {
	var errs []error
	if _, err := os.Stat(filepath.Join(Home, "bin", "catalina.sh")); err != nil {
		errs = append(errs, fmt.Errorf("tomcat10 is not installed (%w)", err))
	}
	if _, err := exec.LookPath("tomcat10-instance-create"); err != nil {
		errs = append(errs, fmt.Errorf("tomcat10-user is not installed (%w)", err))
	}
	if _, err := exec.LookPath("java"); err != nil {
		errs = append(errs, fmt.Errorf("no Java runtime (%w)", err))
	}
	return errors.Join(errs...)
}

// Require skips t when Installed reports an error, naming what to install,
// except when the environment variable CI is set: there t fails, since CI
// installs Tomcat (.ci/run) and the tests must run. With -short it skips t
// in any case: the JVMs take seconds to start.
func Require(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("tomcat: -short: skipping the tests against real Tomcat")
	}
	err := Installed()
	if err == nil {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("tomcat: %v\nCI is set, so the tests against real Tomcat must run: .ci/run installs tomcat10 and tomcat10-user", err)
	}
	t.Skipf("tomcat: %v\nskipping the tests against real Tomcat: apt-get install tomcat10 tomcat10-user runs them (with CI set they fail instead)", err)
}
