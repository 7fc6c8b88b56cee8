Feature: Supervision
  The orchestrator watches every allocation through heartbeats. It restarts
  what fails when the restart policy says so, marks lost what a dead
  provider ran, and ends the deployment accordingly; a deployment outlives
  a restart of the node that orchestrates it.

  Background:
    Given bob and carol each offer 1 CPU to alice's deployments

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
      """
    When the deployment ends within 30 seconds
    Then the deployment is "failed"
    And the allocation "once" was restarted 0 times

  Scenario: When a provider dies, its allocation is marked lost
    Given alice has deployed, without waiting, the ensemble:
      """
      version: v1
      allocations:
        long:
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {module: workload.wasm, args: [print=started, sleep=5m]}
      """
    And the deployment is running within 30 seconds
    When the provider running "long" is killed with SIGKILL
    Then within 30 seconds the deployment is "failed" with the allocation "long" "lost"

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
