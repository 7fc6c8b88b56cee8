Feature: Supervision
  The orchestrator watches every allocation through heartbeats. It restarts
  what fails when the restart policy says so, places again on another
  provider what a dead provider ran (within the ensemble's reschedule
  budget), fences copies that were replaced, applies the ensemble's
  supervision strategy to the dependents of what restarts, and records every
  decision on the deployment's timeline. A deployment outlives a restart of
  the node that orchestrates it, and, with a standby orchestrator, its loss.

  The nodes of this feature supervise quickly: heartbeats every 500ms, an
  allocation lost after 3s of silence, a provider that hears nothing from
  its orchestrator for 6s stops its copy, a standby takes over 4.5s
  (1.5 x the 3s lease) after its primary went silent.

  Background:
    Given alice, bob, carol and dave supervise quickly
    And bob and carol each offer 1 CPU to alice's deployments

  Scenario: A task that fails is restarted on failure, up to its limit
    Given alice has deployed the ensemble:
      """
      version: v1
      allocations:
        flaky:
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {module: workload.wasm, args: [print=attempt, exit=1]}
          restart: {policy: on-failure, max_restarts: 2, backoff: 100ms}
      reschedule: {attempts: 0}
      """
    When the deployment ends within 40 seconds
    Then the deployment is "failed"
    And the allocation "flaky" was restarted 2 times

  Scenario: A task that succeeds is not restarted
    Given alice has deployed the ensemble:
      """
      version: v1
      allocations:
        fine:
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {module: workload.wasm, args: [print=fine]}
          restart: {policy: on-failure, max_restarts: 2, backoff: 100ms}
      """
    When the deployment ends within 30 seconds
    Then the deployment is "completed"
    And the allocation "fine" was restarted 0 times

  Scenario: A task whose policy is never fails at once
    Given alice has deployed the ensemble:
      """
      version: v1
      allocations:
        once:
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {module: workload.wasm, args: [exit=2]}
          restart: {policy: never}
      reschedule: {attempts: 0}
      """
    When the deployment ends within 30 seconds
    Then the deployment is "failed"
    And the allocation "once" was restarted 0 times

  Scenario: When a provider dies, its allocation is redeployed on another provider
    Given alice has deployed, without waiting, the ensemble:
      """
      version: v1
      allocations:
        long:
          type: service
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {module: workload.wasm, args: [print=started, sleep=10m]}
      reschedule: {delay: 100ms}
      """
    And the deployment is running within 30 seconds
    When the provider running "long" dies
    Then within 30 seconds "long" runs on another provider, attempt 2
    And the deployment is "running"
    And the events say "lost", then "redeploying", then "redeployed"
    When alice runs `dms deployment events <deployment>`
    Then the command succeeds
    And the output contains "redeployed node long"

  Scenario: A node that keeps failing spends its reschedule budget and fails the deployment
    Given alice has deployed the ensemble:
      """
      version: v1
      allocations:
        doomed:
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {module: workload.wasm, args: [print=failing, exit=1]}
          restart: {policy: never}
      reschedule: {attempts: 1, delay: 100ms}
      """
    Then the deployment failed with the reason "reschedule-budget-spent"
    And the events say "failed", then "redeployed", then "failed", then "budget-spent"
    And the allocation "doomed" is at attempt 2
    And within 10 seconds no provider holds any resources

  Scenario: A pinned node waits for its provider instead of moving
    Given alice has deployed, without waiting, the ensemble:
      """
      version: v1
      allocations:
        pinned:
          type: service
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {module: workload.wasm, args: [print=pinned, sleep=10m]}
      nodes:
        home: {allocations: [pinned], peer: <bob.peer>}
      reschedule: {delay: 100ms}
      """
    And the deployment is running within 30 seconds
    When bob's node dies
    Then within 20 seconds the events include "waiting"
    And the deployment is "running"
    And the deployment's message contains "pinned to"
    And the events do not include "redeployed"
    When bob's node comes back
    Then within 30 seconds the deployment is "running" with the allocation "pinned" "running"
    And the events say "lost", then "waiting", then "back"
    And it ran on bob

  Scenario: A provider frozen past stop_after stops its stale copy; the replacement keeps running
    Given alice has deployed, without waiting, the ensemble:
      """
      version: v1
      allocations:
        svc:
          type: service
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {module: workload.wasm, args: [print=serving, sleep=10m]}
      reschedule: {delay: 100ms}
      """
    And the deployment is running within 30 seconds
    When the provider running "svc" is frozen with SIGSTOP
    Then within 30 seconds "svc" runs on another provider, attempt 2
    And "svc" keeps running on its new provider until the frozen provider has been frozen for 8 seconds
    When the frozen provider is continued with SIGCONT
    Then within 20 seconds the frozen provider holds no resources
    And within 20 seconds the events include "stale-stopped"
    And "svc" keeps running on its new provider for 3 seconds
    And the events say "lost", then "redeployed", then "stale-stopped"

  Scenario: one_for_one: a dependency crashes, its dependent is only told
    Given alice has deployed, without waiting, the ensemble:
      """
      version: v1
      allocations:
        db:
          type: service
          executor: wasm
          resources: {cpu: 0.2, ram: 64MiB}
          execution: {module: workload.wasm, args: [print=db-up, sleep=3s, exit=1]}
          restart: {policy: on-failure, max_restarts: 20, backoff: 100ms}
        web:
          type: service
          executor: wasm
          resources: {cpu: 0.2, ram: 64MiB}
          execution: {module: workload.wasm, args: [print=web-up, sleep=10m]}
          depends_on: [db]
      nodes:
        app: {allocations: [db, web]}
      supervision: {strategy: one_for_one}
      """
    And the deployment is running within 30 seconds
    Then within 30 seconds the allocation "db" was restarted at least 1 time
    And within 20 seconds the logs of "web" contain "[dms] dependency db restarted"
    And the allocation "web" was restarted 0 times
    And the events include "notified"

  Scenario: rest_for_one: a dependency crashes, its dependent restarts, an unrelated allocation does not
    Given alice has deployed, without waiting, the ensemble:
      """
      version: v1
      allocations:
        db:
          type: service
          executor: wasm
          resources: {cpu: 0.2, ram: 64MiB}
          execution: {module: workload.wasm, args: [print=db-up, sleep=3s, exit=1]}
          restart: {policy: on-failure, max_restarts: 20, backoff: 100ms}
        web:
          type: service
          executor: wasm
          resources: {cpu: 0.2, ram: 64MiB}
          execution: {module: workload.wasm, args: [print=web-up, sleep=10m]}
          depends_on: [db]
        cache:
          type: service
          executor: wasm
          resources: {cpu: 0.2, ram: 64MiB}
          execution: {module: workload.wasm, args: [print=cache-up, sleep=10m]}
      nodes:
        app: {allocations: [db, web, cache]}
      supervision: {strategy: rest_for_one}
      """
    And the deployment is running within 30 seconds
    Then within 30 seconds the allocation "web" was restarted at least 1 time
    And the logs of "web" contain "[dms] dependency db restarted"
    And the allocation "cache" was restarted 0 times

  Scenario: one_for_all: a dependency crashes, every allocation restarts
    Given alice has deployed, without waiting, the ensemble:
      """
      version: v1
      allocations:
        db:
          type: service
          executor: wasm
          resources: {cpu: 0.2, ram: 64MiB}
          execution: {module: workload.wasm, args: [print=db-up, sleep=3s, exit=1]}
          restart: {policy: on-failure, max_restarts: 20, backoff: 100ms}
        web:
          type: service
          executor: wasm
          resources: {cpu: 0.2, ram: 64MiB}
          execution: {module: workload.wasm, args: [print=web-up, sleep=10m]}
          depends_on: [db]
        cache:
          type: service
          executor: wasm
          resources: {cpu: 0.2, ram: 64MiB}
          execution: {module: workload.wasm, args: [print=cache-up, sleep=10m]}
      nodes:
        app: {allocations: [db, web, cache]}
      supervision: {strategy: one_for_all}
      """
    And the deployment is running within 30 seconds
    Then within 30 seconds the allocation "web" was restarted at least 1 time
    And within 20 seconds the allocation "cache" was restarted at least 1 time

  Scenario: A standby orchestrator takes over when the orchestrating node dies
    Given dave offers 1 CPU to alice's deployments
    And alice has deployed, without waiting, the ensemble:
      """
      version: v1
      allocations:
        front:
          type: service
          executor: wasm
          resources: {cpu: 0.2, ram: 64MiB}
          execution: {module: workload.wasm, args: [print=front-up, sleep=10m]}
        back:
          type: service
          executor: wasm
          resources: {cpu: 0.2, ram: 64MiB}
          execution: {module: workload.wasm, args: [print=back-up, sleep=10m]}
      nodes:
        app: {allocations: [front, back]}
      supervision: {standbys: [<dave.peer>]}
      """
    And the deployment is running within 30 seconds
    And within 20 seconds the deployment as dave shows it is "running" with every allocation "running"
    When alice's node dies
    Then within 8 seconds dave orchestrates the deployment
    And the deployment as dave shows it is "running" with every allocation "running"
    And the events as dave shows them include "takeover"
    When dave runs `dms deployment shutdown <deployment>`
    Then the command succeeds
    And within 20 seconds the deployment as dave shows it is "stopped" with every allocation "stopped"
    When alice's node comes back
    Then within 30 seconds the events as alice shows them include "step-down"
    And within 20 seconds the deployment as alice shows it is "stopped" with every allocation "stopped"

  Scenario: A deployment outlives a restart of the node that orchestrates it
    Given alice has deployed, without waiting, the ensemble:
      """
      version: v1
      allocations:
        svc:
          type: service
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {module: workload.wasm, args: [print=serving, sleep=10m]}
      """
    And the deployment is running within 30 seconds
    When alice's node restarts
    Then the deployment stays "running" for 6 seconds
    And the allocation "svc" was restarted 0 times
    When alice runs `dms deployment shutdown <deployment>`
    Then the command succeeds
    And the output contains "stopped"

  Scenario: Bad reschedule and supervision blocks are refused with their path and line
    Given the file "bad.yaml":
      """
      version: v1
      allocations:
        web:
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {module: workload.wasm}
      reschedule:
        attempts: 2
        delay: -1s
      supervision:
        strategy: one_for_some
        standbys: [not-a-peer]
      """
    When alice runs `dms validate -f bad.yaml`
    Then the command fails with exit code 1
    And the output contains "reschedule.delay: must not be negative, got -1s (line 9)"
    And the output contains "supervision.strategy: unknown value \"one_for_some\" (did you mean \"one_for_one\"?) (line 11)"
    And the output contains "supervision.standbys[0]: \"not-a-peer\" is not a peer ID"
    And the output contains "(line 12)"
