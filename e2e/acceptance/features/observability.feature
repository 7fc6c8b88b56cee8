@pending
Feature: Observability
  An operator sees what a node does: Prometheus metrics on loopback,
  OpenTelemetry traces of each deployment across the nodes it touches, and
  logs exported in Elasticsearch's bulk format.

  Scenario: A node exposes Prometheus metrics on loopback
    Given the node alice is running with metrics on
    When a program scrapes alice's metrics endpoint
    Then it finds the counters of messages by behavior and code

  Scenario: Refusals are counted by their typed code
    Given the nodes alice and bob are running and connected
    When alice invokes a command bob denies 3 times
    Then bob's metrics count 3 messages refused with "denied"

  Scenario: A deployment is traced end to end
    Given an OTLP collector
    And bob offers 1 CPU to alice's deployments
    When alice deploys a task and it completes
    Then the collector holds one trace spanning bidding, commit and the allocation's run on bob

  Scenario: Allocation logs are exported in the Elasticsearch bulk format
    Given an HTTP endpoint that accepts _bulk requests
    When a deployment prints three lines
    Then the endpoint receives three documents with the deployment's ID

  Scenario: A node's health and resource gauges are published
    Given the node alice is running with metrics on
    When alice onboards 1 CPU
    Then the gauge of onboarded CPU reads 1
