Feature: Observability
  An operator sees what the network does: one OpenTelemetry trace per
  deployment across every node it touches (exported to a collector, and
  read back with `dms deployment trace` without one), Prometheus metrics
  on the API listener behind the API token, and the nodes' and the
  allocations' logs in an Elasticsearch-API store, found by deployment ID
  (docs/observability.md). The servers are real ones, started by the
  suite: Jaeger v1.75.0, Debian's Prometheus and ZincSearch v0.4.10.

  Background:
    Given a Jaeger and an Elasticsearch-API store
    And the nodes alice, bob and carol send their telemetry to them
    And the nodes alice, bob and carol are running and connected
    And bob and carol each offer 1 CPU to alice's deployments

  Scenario: A deployment on three nodes is one trace, with spans from every node
    Given alice has deployed the ensemble:
      """
      version: v1
      allocations:
        one:
          executor: wasm
          resources: {cpu: 0.8, ram: 64MiB}
          execution: {module: workload.wasm, args: [print=one]}
        two:
          executor: wasm
          resources: {cpu: 0.8, ram: 64MiB}
          execution: {module: workload.wasm, args: [print=two]}
      nodes:
        n1: {allocations: [one]}
        n2: {allocations: [two]}
      """
    When the deployment completes within 60 seconds
    Then within 30 seconds Jaeger holds alice's trace of the deployment, with spans from alice, bob and carol
    And `dms deployment trace <deployment>` on alice shows one trace with spans from alice, bob and carol

  Scenario: Prometheus scrapes a node and finds its placements
    Given Prometheus scrapes alice
    And alice has deployed the ensemble:
      """
      version: v1
      allocations:
        job:
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {module: workload.wasm, args: [print=counted]}
      """
    When the deployment completes within 60 seconds
    Then within 30 seconds Prometheus answers the query "sum(dms_placements_total)" with at least 1

  Scenario: Refusals are counted by their typed code
    Given bob's refusals coded "denied" are noted
    When carol, whom bob does not trust, invokes a command on bob 3 times
    Then bob's metrics count 3 more refusals coded "denied"

  Scenario: The logs of a deployment are found in the store by its ID
    Given alice has deployed the ensemble:
      """
      version: v1
      allocations:
        job:
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {module: workload.wasm, args: [print=first-line, print=second-line, print=third-line]}
          logs: {ship: true}
      """
    When the deployment completes within 60 seconds
    Then within 30 seconds the store holds, by the deployment's ID, records of alice's node and exactly once each of the lines "first-line", "second-line" and "third-line" of "job"

  Scenario: The store going down for 30 seconds loses nothing and duplicates nothing
    Given the Elasticsearch-API store goes down
    And alice has deployed the ensemble:
      """
      version: v1
      allocations:
        job:
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {module: workload.wasm, args: [print=while-down-1, sleep=10s, print=while-down-2]}
          logs: {ship: true}
      """
    And the deployment completes within 60 seconds
    When the Elasticsearch-API store comes back after 30 seconds down
    Then within 60 seconds the store holds, by the deployment's ID, records of alice's node and exactly once each of the lines "while-down-1" and "while-down-2" of "job"
