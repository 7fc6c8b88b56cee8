Feature: Orchestration
  A user deploys an ensemble with dms deploy. Providers bid, the
  orchestrator places every allocation on a provider that fits (all or
  nothing), starts them in dependency order, and reports progress, logs
  and the exit code. A deployment that fits nowhere waits in the queue and
  says why.

  Background:
    Given bob and carol each offer 1 CPU to alice's deployments

  Scenario: A task runs to completion and dms deploy returns its exit code
    Given the ensemble "job.yaml":
      """
      version: v1
      allocations:
        job:
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {module: workload.wasm, args: [print=hello-from-the-job, exit=3]}
      """
    When alice runs `dms deploy -f job.yaml --follow`
    Then the command fails with exit code 3
    And the output contains "hello-from-the-job"
    And the error says "bidding"
    And the error says "committing"
    And the error says "running"

  Scenario: The logs of a finished deployment can be read again
    Given alice has deployed the ensemble:
      """
      version: v1
      allocations:
        job:
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {module: workload.wasm, args: [print=logs-are-kept]}
      """
    And the deployment completes within 30 seconds
    When alice runs `dms deployment logs <deployment>`
    Then the command succeeds
    And the output contains "logs-are-kept"

  Scenario: Allocations start in depends_on order
    Given alice has deployed, without waiting, the ensemble:
      """
      version: v1
      allocations:
        first:
          executor: wasm
          resources: {cpu: 0.2, ram: 64MiB}
          execution: {module: workload.wasm, args: [print=one, sleep=300ms]}
        second:
          executor: wasm
          resources: {cpu: 0.2, ram: 64MiB}
          execution: {module: workload.wasm, args: [print=two]}
          depends_on: [first]
      nodes:
        main: {allocations: [first, second]}
      """
    When the deployment completes within 30 seconds
    Then the allocation "second" started after "first" finished

  Scenario: A gang of two nodes is placed on two different providers
    Given alice has deployed the ensemble:
      """
      version: v1
      allocations:
        a:
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {module: workload.wasm, args: [sleep=100ms]}
        b:
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {module: workload.wasm, args: [sleep=100ms]}
      nodes:
        n1: {allocations: [a]}
        n2: {allocations: [b]}
      """
    When the deployment completes within 30 seconds
    Then its nodes are placed on 2 different providers

  Scenario: A deployment that fits nowhere waits with reasons, then proceeds when a provider offers enough
    Given alice has deployed, without waiting, the ensemble:
      """
      version: v1
      allocations:
        big:
          executor: wasm
          resources: {cpu: 1.2, ram: 64MiB}
          execution: {module: workload.wasm, args: [print=finally]}
      """
    Then within 20 seconds the deployment is queued because of "resource" on bob and carol
    When carol offers 1.5 CPU for this scenario
    Then the deployment completes within 40 seconds
    And it ran on carol

  Scenario: A service is shut down on request and frees what it held
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
    When alice runs `dms deployment shutdown <deployment>`
    Then the command succeeds
    And the output contains "stopped"
    And within 20 seconds no provider holds any resources

  Scenario: dms deployments lists the deployments a node orchestrates
    Given alice has deployed the ensemble:
      """
      version: v1
      allocations:
        job:
          executor: wasm
          resources: {cpu: 0.2, ram: 64MiB}
          execution: {module: workload.wasm, args: [print=listed]}
      """
    When alice runs `dms deployments`
    Then the command succeeds
    And the output contains "<deployment>"
    And the output contains "completed"

  Scenario: A node that offers resources runs its own user's job
    Given the node dana is running with nothing onboarded
    And dana has run `dms onboard --cpu 1 --ram 512MiB --disk 1GiB`
    And the ensemble "job.yaml":
      """
      version: v1
      allocations:
        job:
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {module: workload.wasm, args: [print=ran-at-home]}
      timeouts: {queue: 20s}
      """
    When dana runs `dms deploy -f job.yaml --follow`
    Then the command succeeds
    And the output contains "ran-at-home"
