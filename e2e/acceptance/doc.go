// Package acceptance is the Gherkin acceptance suite of dms: one feature
// file per capability of the system (features/*.feature), each scenario
// stated as a user states the behavior, run with godog against real dms
// processes on loopback that the steps drive through the CLI, as a user
// would (see internal/e2etest).
//
// # Running
//
//	make acceptance                      # builds bin/dms, runs the suite, prints the table
//	make acceptance FEATURES=actors,p2p  # only these feature files
//	go test ./e2e/acceptance             # the same, with a binary built from this checkout
//
// As each scenario ends the suite prints its verdict (and, when it fails,
// why, with the tail of the logs of the nodes involved). After the run it
// prints, per feature file, how many scenarios PASSED, are PENDING, were
// SKIPPED and FAILED, and writes under build/reports/ (or $DMS_REPORTS):
// acceptance.json (godog's cucumber JSON, from which the table is
// computed), acceptance.txt (the table) and acceptance.xml (JUnit: a
// pending or skipped scenario is a skipped testcase with its reason, never
// a passed or an errored one). The test fails when a scenario fails;
// pending and skipped scenarios do not fail it.
//
// # Tags
//
//   - @pending: the behavior is not built yet. The scenario is reported
//     pending and none of its steps runs; its steps may stay undefined.
//   - @docker, @vm: the scenario needs that executor. It is skipped, with
//     the reason, when the machine has no Docker engine (no QEMU, no test
//     kernel) or the providers do not offer it.
//
// A scenario without @pending must have every step defined: an undefined
// step fails it, naming the step.
//
// # Adding a feature
//
// Write features/NAME.feature, put its step definitions in
// steps_NAME_test.go as a func(*godog.ScenarioContext), and add that
// function to stepSets in suite_test.go: one line. Steps reach the
// scenario's state with worldOf(ctx): w.T is a testing.TB whose Fatal fails
// the step and whose Cleanup runs when the scenario ends; w.Feature.T is
// the same for things shared by the feature's scenarios (its cleanups run
// after the feature's last scenario), and featureValue memoises such
// things. Every wait is bounded (internal/poll) and every process a
// step starts is stopped by a cleanup.
package acceptance
