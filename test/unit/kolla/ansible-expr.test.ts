import assert from 'node:assert/strict';
import { UNDEFINED, UNKNOWN, condition, evaluate, templateValue, type Scope, type Value } from '../../../lib/kolla/ansible-expr.ts';

const vars: Record<string, Value> = {
  enable_nova: 'yes', enable_cinder: 'no', enable_heat: true, neutron_plugin_agent: 'openvswitch',
  inventory_hostname: 'compute01', groups: { compute: ['compute01'], control: ['control01', 'control02'], mariadb: ['control01'] },
  run_time: UNKNOWN, providers: [],
};
const scope: Scope = (name) => (Object.hasOwn(vars, name) ? vars[name]! : UNDEFINED);

describe('kolla/ansible-expr', () => {
  const conditions: Array<[string, boolean | typeof UNKNOWN]> = [
    ['enable_nova | bool', true],
    ['enable_cinder | bool', false],
    ['not enable_cinder | bool', true],
    ["'enable_nova_{{ enable_nova | bool }}' == 'enable_nova_True'", true],
    ["'enable_cinder_{{ enable_cinder | bool }}' == 'enable_cinder_True'", false],
    ['{{ enable_heat }}', true],
    ['{{ enable_cinder }}', false],
    ["{{ inventory_hostname in groups['compute'] }}", true],
    ["inventory_hostname in groups ['control']", false],
    ["inventory_hostname not in groups['control']", true],
    ["{{ neutron_plugin_agent not in ['ovn', 'vmware_nsxv'] }}", true],
    ['neutron_plugin_agent == "linuxbridge"', false],
    ["(groups['mariadb'] | length) == 1", true],
    ["groups['control'][0] == 'control01'", true],
    ['(providers | length > 0)', false],
    ["{{ True if neutron_plugin_agent == 'openvswitch' else enable_cinder | bool }}", true],
    ['{{\n inventory_hostname in groups[\'compute\']\n}}', true],
    // three-valued: what run-time state decides stays unknown unless the other side decides
    ['not run_time', UNKNOWN],
    ['run_time and enable_cinder | bool', false],
    ['run_time or enable_nova | bool', true],
    ['run_time == "x"', UNKNOWN],
    ['undefined_var is defined', false],
    ['undefined_var is not defined', true],
    ['lookup("env", "X")', UNKNOWN],
    ['this is @ not jinja', UNKNOWN],
    ['True', true],
    ['no', false],
  ];
  for (const [text, expected] of conditions) {
    it(`${JSON.stringify(text)} is ${String(expected)}`, () => assert.equal(condition(text, scope), expected));
  }

  it('templates YAML values as Ansible does: one expression is its value, mixed text is rendered', () => {
    assert.equal(templateValue('{{ enable_nova | bool }}', scope), true);
    assert.equal(templateValue("{{ 'yes' if enable_cinder | bool else 'no' }}", scope), 'no');
    assert.equal(templateValue('x-{{ neutron_plugin_agent }}-{{ enable_heat }}', scope), 'x-openvswitch-True');
    assert.equal(templateValue('{{ run_time }}-x', scope), UNKNOWN);
    assert.equal(templateValue('plain', scope), 'plain');
    assert.equal(evaluate("'a' ~ 'b'", scope), 'ab');
  });
});
